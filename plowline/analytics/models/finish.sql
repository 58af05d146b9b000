-- Record the run in the manifest and answer one row per model: its rows, and how many of them this
-- run rebuilt. (The scope tables keep the last run's keys until the next run.)

INSERT INTO derived.plowline_models_manifest (
    run_at, full_refresh, window_start, high_water_load_tstamp, sessions_rebuilt, users_rebuilt
)
SELECT
    {{run_at}},
    {{full_refresh}},
    {{window_start}},
    -- Only rows loaded since the last high-water mark can raise it: a BRIN range scan, not the table.
    coalesce((SELECT max(load_tstamp) FROM {{events}}
              WHERE load_tstamp >= coalesce({{previous_high_water}}, TIMESTAMP '-infinity')),
             {{previous_high_water}}),
    (SELECT count(*) FROM derived.plowline_models_scope_sessions),
    (SELECT count(DISTINCT domain_userid) FROM derived.plowline_models_scope_users);

SELECT 1 AS ordinal, 'page_views' AS model,
       (SELECT count(*) FROM derived.page_views) AS row_count,
       (SELECT count(*) FROM derived.page_views
        WHERE domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions)) AS rebuilt
UNION ALL
SELECT 2, 'sessions',
       (SELECT count(*) FROM derived.sessions),
       (SELECT count(*) FROM derived.sessions
        WHERE domain_sessionid IN (SELECT domain_sessionid FROM derived.plowline_models_scope_sessions))
UNION ALL
SELECT 3, 'users',
       (SELECT count(*) FROM derived.users),
       (SELECT count(*) FROM derived.users
        WHERE domain_userid IN (SELECT domain_userid FROM derived.plowline_models_scope_users))
ORDER BY 1;
