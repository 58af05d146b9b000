-- derived.users for the users in scope, from all their sessions: first and last seen, totals, and
-- first-touch attribution (landing page, referrer, source, medium and campaign of the first session).

INSERT INTO derived.plowline_models_scope_users (domain_userid)
SELECT DISTINCT s.domain_userid
FROM derived.sessions AS s
WHERE s.domain_userid IS NOT NULL
  AND s.domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions);

DELETE FROM derived.users
WHERE domain_userid IN (SELECT domain_userid FROM derived.plowline_models_scope_users);

INSERT INTO derived.users (
    domain_userid, user_id, network_userid, first_seen, last_seen, sessions, page_views, engaged_time_in_s,
    first_session_id, first_landing_page_url, first_page_referrer, first_source, first_medium, first_campaign,
    first_mkt_term, first_mkt_content, first_geo_country, last_session_id
)
WITH ranked AS (
    SELECT
        s.*,
        row_number() OVER (PARTITION BY s.domain_userid ORDER BY s.start_tstamp, s.domain_sessionid) AS from_first,
        row_number() OVER (PARTITION BY s.domain_userid ORDER BY s.start_tstamp DESC, s.domain_sessionid DESC)
            AS from_last,
        row_number() OVER (
            PARTITION BY s.domain_userid
            ORDER BY CASE WHEN s.user_id IS NULL THEN 1 ELSE 0 END, s.start_tstamp DESC, s.domain_sessionid DESC
        ) AS by_user_id
    FROM derived.sessions AS s
    WHERE s.domain_userid IN (SELECT domain_userid FROM derived.plowline_models_scope_users)
)
-- One pass, no self-joins: each first/last value is the one row of the group the CASE picks.
SELECT
    domain_userid,
    max(CASE WHEN by_user_id = 1 THEN user_id END),
    max(CASE WHEN from_last = 1 THEN network_userid END),
    min(start_tstamp),
    max(end_tstamp),
    count(*),
    sum(page_views),
    sum(engaged_time_in_s),
    max(CASE WHEN from_first = 1 THEN domain_sessionid END),
    max(CASE WHEN from_first = 1 THEN landing_page_url END),
    max(CASE WHEN from_first = 1 THEN page_referrer END),
    max(CASE WHEN from_first = 1 THEN source END),
    max(CASE WHEN from_first = 1 THEN medium END),
    max(CASE WHEN from_first = 1 THEN campaign END),
    max(CASE WHEN from_first = 1 THEN mkt_term END),
    max(CASE WHEN from_first = 1 THEN mkt_content END),
    max(CASE WHEN from_first = 1 THEN geo_country END),
    max(CASE WHEN from_last = 1 THEN domain_sessionid END)
FROM ranked
GROUP BY domain_userid;
