-- The keys this run rebuilds: every session with a page view or page ping loaded after the window
-- start (the last high-water mark minus the lookback window; every event on the first run), and
-- every user who has one of those sessions, before or after the rebuild.

DELETE FROM derived.plowline_models_scope_sessions;

DELETE FROM derived.plowline_models_scope_users;

INSERT INTO derived.plowline_models_scope_sessions (domain_sessionid)
SELECT DISTINCT e.domain_sessionid
FROM {{events}} AS e
WHERE e.domain_sessionid IS NOT NULL
  AND e.event IN ('page_view', 'page_ping')
  -- One comparison, not `IS NULL OR`, so PostgreSQL can use the load_tstamp BRIN index.
  AND e.load_tstamp > coalesce({{window_start}}, TIMESTAMP '-infinity');

INSERT INTO derived.plowline_models_scope_users (domain_userid)
SELECT DISTINCT s.domain_userid
FROM derived.sessions AS s
WHERE s.domain_userid IS NOT NULL
  AND s.domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions);
