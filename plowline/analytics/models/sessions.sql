-- derived.sessions for the sessions in scope, from their page views: start of the first, end of
-- the last, engaged time summed; landing page, referrer and campaign of the first page view and
-- exit page of the last. source is mkt_source, else refr_source, else the referrer's host, else
-- '(direct)'; medium is mkt_medium, else refr_medium, else '(none)'. A bounce is a session of
-- exactly one page view.

DELETE FROM derived.sessions
WHERE domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions);

INSERT INTO derived.sessions (
    domain_sessionid, domain_sessionidx, domain_userid, network_userid, user_id, app_id, platform, start_tstamp,
    end_tstamp, page_views, engaged_time_in_s, absolute_time_in_s, is_bounce, landing_page_url, landing_page_title,
    landing_page_urlhost, landing_page_urlpath, exit_page_url, exit_page_urlpath, page_referrer, refr_urlhost,
    refr_medium, refr_source, refr_term, mkt_medium, mkt_source, mkt_term, mkt_content, mkt_campaign, mkt_clickid,
    mkt_network, source, medium, campaign, geo_country, geo_region_name, geo_city, geo_timezone, br_family,
    os_family, dvce_type, dvce_ismobile
)
WITH views AS (
    SELECT *
    FROM derived.page_views
    WHERE domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions)
),
totals AS (
    SELECT
        domain_sessionid,
        min(start_tstamp) AS start_tstamp,
        max(end_tstamp) AS end_tstamp,
        count(*) AS page_views,
        sum(engaged_time_in_s) AS engaged_time_in_s,
        max(page_view_in_session_index) AS last_index
    FROM views
    GROUP BY domain_sessionid
)
SELECT
    t.domain_sessionid,
    f.domain_sessionidx,
    f.domain_userid,
    f.network_userid,
    f.user_id,
    f.app_id,
    f.platform,
    t.start_tstamp,
    t.end_tstamp,
    t.page_views,
    t.engaged_time_in_s,
    CAST(floor(extract(epoch FROM (t.end_tstamp - t.start_tstamp))) AS bigint),
    t.page_views = 1,
    f.page_url,
    f.page_title,
    f.page_urlhost,
    f.page_urlpath,
    l.page_url,
    l.page_urlpath,
    f.page_referrer,
    f.refr_urlhost,
    f.refr_medium,
    f.refr_source,
    f.refr_term,
    f.mkt_medium,
    f.mkt_source,
    f.mkt_term,
    f.mkt_content,
    f.mkt_campaign,
    f.mkt_clickid,
    f.mkt_network,
    coalesce(f.mkt_source, f.refr_source, f.refr_urlhost, '(direct)'),
    coalesce(f.mkt_medium, f.refr_medium, '(none)'),
    f.mkt_campaign,
    f.geo_country,
    f.geo_region_name,
    f.geo_city,
    f.geo_timezone,
    f.br_family,
    f.os_family,
    f.dvce_type,
    f.dvce_ismobile
FROM totals AS t
JOIN views AS f ON f.domain_sessionid = t.domain_sessionid AND f.page_view_in_session_index = 1
JOIN views AS l ON l.domain_sessionid = t.domain_sessionid AND l.page_view_in_session_index = t.last_index;
