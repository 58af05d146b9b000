-- derived.page_views for the sessions in scope, rebuilt from all their page_view and page_ping
-- events, following Snowplow's web model (snowplow-web dbt package):
--
-- * page_view_id is the id of the web_page context (iglu:com.snowplowanalytics.snowplow/
--   web_page/jsonschema/1-*-*) that the tracker attaches to the page view and to its pings. Events
--   without one, or without a domain_sessionid, are left out. A page view id seen twice in a
--   session (a duplicated event) counts once: its earliest page_view event.
-- * engaged_time_in_s = heartbeat * (distinct heartbeat windows with a ping - 1) + min_visit_length,
--   where a ping's window is floor(epoch(derived_tstamp) / heartbeat): the first ping comes
--   min_visit_length after the page loads and one more every heartbeat while the user is active.
--   0 without pings. (collector_tstamp stands in for a missing derived_tstamp.)
-- * end_tstamp is the last ping's time (start_tstamp without pings); absolute_time_in_s is the
--   whole seconds between start and end.
-- * Scroll depth from page view and ping events with doc_width and doc_height above 0: the
--   furthest offsets (pp_xoffset_max, pp_yoffset_max), kept within 0 and the document size, and as
--   a percentage, round(100 * min(offset + viewport, document) / document), halves rounded up.

DELETE FROM derived.page_views
WHERE domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions);

INSERT INTO derived.page_views (
    page_view_id, event_id, app_id, platform, domain_userid, network_userid, user_id, domain_sessionid,
    domain_sessionidx, page_view_in_session_index, start_tstamp, end_tstamp, page_pings, engaged_time_in_s,
    absolute_time_in_s, doc_width, doc_height, br_viewwidth, br_viewheight, horizontal_pixels_scrolled,
    vertical_pixels_scrolled, horizontal_percentage_scrolled, vertical_percentage_scrolled, page_url, page_title,
    page_urlscheme, page_urlhost, page_urlpath, page_urlquery, page_urlfragment, page_referrer, refr_urlhost,
    refr_urlpath, refr_medium, refr_source, refr_term, mkt_medium, mkt_source, mkt_term, mkt_content, mkt_campaign,
    mkt_clickid, mkt_network, geo_country, geo_region, geo_region_name, geo_city, geo_zipcode, geo_latitude,
    geo_longitude, geo_timezone, user_ipaddress, useragent, br_name, br_family, br_version, br_type,
    br_renderengine, br_lang, os_name, os_family, os_manufacturer, os_timezone, dvce_type, dvce_ismobile,
    dvce_screenwidth, dvce_screenheight
)
WITH events_in_scope AS (
    SELECT
        -- only the columns used below: the events are read once and kept for the three uses
        e.event, e.event_id, e.app_id, e.platform, e.domain_userid, e.network_userid, e.user_id, e.domain_sessionid,
        e.domain_sessionidx, e.doc_width, e.doc_height, e.br_viewwidth, e.br_viewheight, e.pp_xoffset_max,
        e.pp_yoffset_max, e.page_url, e.page_title, e.page_urlscheme, e.page_urlhost, e.page_urlpath, e.page_urlquery,
        e.page_urlfragment, e.page_referrer, e.refr_urlhost, e.refr_urlpath, e.refr_medium, e.refr_source,
        e.refr_term, e.mkt_medium, e.mkt_source, e.mkt_term, e.mkt_content, e.mkt_campaign, e.mkt_clickid,
        e.mkt_network, e.geo_country, e.geo_region, e.geo_region_name, e.geo_city, e.geo_zipcode, e.geo_latitude,
        e.geo_longitude, e.geo_timezone, e.user_ipaddress, e.useragent, e.br_name, e.br_family, e.br_version,
        e.br_type, e.br_renderengine, e.br_lang, e.os_name, e.os_family, e.os_manufacturer, e.os_timezone,
        e.dvce_type, e.dvce_ismobile, e.dvce_screenwidth, e.dvce_screenheight,
        {{page_view_id}} AS page_view_id,
        coalesce(e.derived_tstamp, e.collector_tstamp) AS tstamp
    FROM {{events}} AS e
    WHERE e.event IN ('page_view', 'page_ping')
      AND e.domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions)
),
views AS (
    SELECT
        v.*,
        row_number() OVER (PARTITION BY v.domain_sessionid, v.page_view_id ORDER BY v.tstamp, v.event_id) AS copy
    FROM events_in_scope AS v
    WHERE v.event = 'page_view' AND v.page_view_id IS NOT NULL
),
first_views AS (
    SELECT
        v.*,
        row_number() OVER (PARTITION BY v.domain_sessionid ORDER BY v.tstamp, v.page_view_id) AS index_in_session
    FROM views AS v
    WHERE v.copy = 1
),
pings AS (
    SELECT
        p.domain_sessionid,
        p.page_view_id,
        count(*) AS page_pings,
        count(DISTINCT floor(extract(epoch FROM p.tstamp) / {{heartbeat_s}})) AS windows,
        max(p.tstamp) AS last_ping
    FROM events_in_scope AS p
    WHERE p.event = 'page_ping' AND p.page_view_id IS NOT NULL
    GROUP BY p.domain_sessionid, p.page_view_id
),
scroll AS (
    SELECT
        s.domain_sessionid,
        s.page_view_id,
        max(s.doc_width) AS doc_width,
        max(s.doc_height) AS doc_height,
        max(s.br_viewwidth) AS br_viewwidth,
        max(s.br_viewheight) AS br_viewheight,
        least(greatest(max(coalesce(s.pp_xoffset_max, 0)), 0), max(s.doc_width)) AS hmax,
        least(greatest(max(coalesce(s.pp_yoffset_max, 0)), 0), max(s.doc_height)) AS vmax
    FROM events_in_scope AS s
    WHERE s.page_view_id IS NOT NULL AND s.doc_width > 0 AND s.doc_height > 0
    GROUP BY s.domain_sessionid, s.page_view_id
)
SELECT
    v.page_view_id,
    CAST(v.event_id AS text),
    v.app_id,
    v.platform,
    v.domain_userid,
    v.network_userid,
    v.user_id,
    v.domain_sessionid,
    v.domain_sessionidx,
    v.index_in_session,
    v.tstamp,
    coalesce(p.last_ping, v.tstamp),
    coalesce(p.page_pings, 0),
    CASE WHEN p.windows IS NULL THEN 0 ELSE {{heartbeat_s}} * (p.windows - 1) + {{min_visit_length_s}} END,
    CAST(floor(extract(epoch FROM (coalesce(p.last_ping, v.tstamp) - v.tstamp))) AS bigint),
    s.doc_width,
    s.doc_height,
    s.br_viewwidth,
    s.br_viewheight,
    s.hmax,
    s.vmax,
    CAST(floor(100.0 * least(s.hmax + coalesce(s.br_viewwidth, 0), s.doc_width) / s.doc_width + 0.5) AS integer),
    CAST(floor(100.0 * least(s.vmax + coalesce(s.br_viewheight, 0), s.doc_height) / s.doc_height + 0.5) AS integer),
    v.page_url,
    v.page_title,
    v.page_urlscheme,
    v.page_urlhost,
    v.page_urlpath,
    v.page_urlquery,
    v.page_urlfragment,
    v.page_referrer,
    v.refr_urlhost,
    v.refr_urlpath,
    v.refr_medium,
    v.refr_source,
    v.refr_term,
    v.mkt_medium,
    v.mkt_source,
    v.mkt_term,
    v.mkt_content,
    v.mkt_campaign,
    v.mkt_clickid,
    v.mkt_network,
    v.geo_country,
    v.geo_region,
    v.geo_region_name,
    v.geo_city,
    v.geo_zipcode,
    v.geo_latitude,
    v.geo_longitude,
    v.geo_timezone,
    v.user_ipaddress,
    v.useragent,
    v.br_name,
    v.br_family,
    v.br_version,
    v.br_type,
    v.br_renderengine,
    v.br_lang,
    v.os_name,
    v.os_family,
    v.os_manufacturer,
    v.os_timezone,
    v.dvce_type,
    v.dvce_ismobile,
    v.dvce_screenwidth,
    v.dvce_screenheight
FROM first_views AS v
LEFT JOIN pings AS p ON p.domain_sessionid = v.domain_sessionid AND p.page_view_id = v.page_view_id
LEFT JOIN scroll AS s ON s.domain_sessionid = v.domain_sessionid AND s.page_view_id = v.page_view_id;
