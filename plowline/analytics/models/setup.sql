-- The derived tables, created when missing. Types are spelled so that DuckDB and PostgreSQL read
-- them alike (text, integer, bigint, float8, boolean, timestamp: UTC without a zone, as
-- atomic.events). No primary keys: each run deletes and re-inserts whole sessions in one
-- transaction, and DuckDB checks unique keys too eagerly for that.

CREATE SCHEMA IF NOT EXISTS derived;

-- One row per page view: the page_view event and its page pings, grouped by the web_page
-- context's id within one session.
CREATE TABLE IF NOT EXISTS derived.page_views (
    page_view_id                    text NOT NULL,   -- contexts: web_page/jsonschema/1-*-* data.id
    event_id                        text NOT NULL,   -- the page_view event
    app_id                          text,
    platform                        text,
    domain_userid                   text,
    network_userid                  text,
    user_id                         text,
    domain_sessionid                text NOT NULL,
    domain_sessionidx               integer,
    page_view_in_session_index      integer NOT NULL, -- 1 for the session's first page view
    start_tstamp                    timestamp NOT NULL, -- derived_tstamp of the page_view event
    end_tstamp                      timestamp NOT NULL, -- of the last page ping, else start_tstamp
    page_pings                      bigint NOT NULL,
    engaged_time_in_s               bigint NOT NULL,
    absolute_time_in_s              bigint NOT NULL,
    doc_width                       integer,
    doc_height                      integer,
    br_viewwidth                    integer,
    br_viewheight                   integer,
    horizontal_pixels_scrolled      integer,
    vertical_pixels_scrolled        integer,
    horizontal_percentage_scrolled  integer,
    vertical_percentage_scrolled    integer,
    page_url                        text,
    page_title                      text,
    page_urlscheme                  text,
    page_urlhost                    text,
    page_urlpath                    text,
    page_urlquery                   text,
    page_urlfragment                text,
    page_referrer                   text,
    refr_urlhost                    text,
    refr_urlpath                    text,
    refr_medium                     text,
    refr_source                     text,
    refr_term                       text,
    mkt_medium                      text,
    mkt_source                      text,
    mkt_term                        text,
    mkt_content                     text,
    mkt_campaign                    text,
    mkt_clickid                     text,
    mkt_network                     text,
    geo_country                     text,
    geo_region                      text,
    geo_region_name                 text,
    geo_city                        text,
    geo_zipcode                     text,
    geo_latitude                    float8,
    geo_longitude                   float8,
    geo_timezone                    text,
    user_ipaddress                  text,
    useragent                       text,
    br_name                         text,
    br_family                       text,
    br_version                      text,
    br_type                         text,
    br_renderengine                 text,
    br_lang                         text,
    os_name                         text,
    os_family                       text,
    os_manufacturer                 text,
    os_timezone                     text,
    dvce_type                       text,
    dvce_ismobile                   boolean,
    dvce_screenwidth                integer,
    dvce_screenheight               integer
);

-- One row per domain_sessionid that has a page view.
CREATE TABLE IF NOT EXISTS derived.sessions (
    domain_sessionid                text NOT NULL,
    domain_sessionidx               integer,
    domain_userid                   text,
    network_userid                  text,
    user_id                         text,
    app_id                          text,
    platform                        text,
    start_tstamp                    timestamp NOT NULL,
    end_tstamp                      timestamp NOT NULL,
    page_views                      bigint NOT NULL,
    engaged_time_in_s               bigint NOT NULL,
    absolute_time_in_s              bigint NOT NULL,
    is_bounce                       boolean NOT NULL, -- exactly one page view
    landing_page_url                text,
    landing_page_title              text,
    landing_page_urlhost            text,
    landing_page_urlpath            text,
    exit_page_url                   text,
    exit_page_urlpath               text,
    page_referrer                   text,
    refr_urlhost                    text,
    refr_medium                     text,
    refr_source                     text,
    refr_term                       text,
    mkt_medium                      text,
    mkt_source                      text,
    mkt_term                        text,
    mkt_content                     text,
    mkt_campaign                    text,
    mkt_clickid                     text,
    mkt_network                     text,
    source                          text NOT NULL,  -- mkt_source, else refr_source, else refr_urlhost, else (direct)
    medium                          text NOT NULL,  -- mkt_medium, else refr_medium, else (none)
    campaign                        text,           -- mkt_campaign
    geo_country                     text,
    geo_region_name                 text,
    geo_city                        text,
    geo_timezone                    text,
    br_family                       text,
    os_family                       text,
    dvce_type                       text,
    dvce_ismobile                   boolean
);

-- One row per domain_userid that has a session.
CREATE TABLE IF NOT EXISTS derived.users (
    domain_userid                   text NOT NULL,
    user_id                         text,           -- the latest session's that has one
    network_userid                  text,           -- the latest session's
    first_seen                      timestamp NOT NULL,
    last_seen                       timestamp NOT NULL,
    sessions                        bigint NOT NULL,
    page_views                      bigint NOT NULL,
    engaged_time_in_s               bigint NOT NULL,
    -- first touch: the user's first session
    first_session_id                text NOT NULL,
    first_landing_page_url          text,
    first_page_referrer             text,
    first_source                    text NOT NULL,
    first_medium                    text NOT NULL,
    first_campaign                  text,
    first_mkt_term                  text,
    first_mkt_content               text,
    first_geo_country               text,
    last_session_id                 text NOT NULL
);

-- One row per run. The high-water mark is the greatest load_tstamp of atomic.events the run saw.
CREATE TABLE IF NOT EXISTS derived.plowline_models_manifest (
    run_at                          timestamp NOT NULL,
    full_refresh                    boolean NOT NULL,
    window_start                    timestamp,       -- NULL: every event was read
    high_water_load_tstamp          timestamp,
    sessions_rebuilt                bigint NOT NULL,
    users_rebuilt                   bigint NOT NULL
);

-- Scratch tables of one run: the keys it rebuilds (emptied again before it commits).
CREATE TABLE IF NOT EXISTS derived.plowline_models_scope_sessions (domain_sessionid text NOT NULL);

CREATE TABLE IF NOT EXISTS derived.plowline_models_scope_users (domain_userid text NOT NULL);
