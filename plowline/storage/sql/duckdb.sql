-- DuckDB warehouse: atomic.events (the 131 enriched fields, typed) and atomic.bad_rows.
--
-- plowline/storage/duckdb.py applies each migration below once, in order, each in one
-- transaction, and records it in atomic.plowline_migrations (DuckDB lets one process write a
-- database file at a time, so no other lock is needed). Append new migrations at the end with the
-- next number; never edit one that has shipped. tests/storage/test_duckdb.py checks the columns
-- against plowline.storage.rows.column_types("duckdb"), the types every typed loader shares.
--
-- Types follow Snowplow's atomic.events where that keeps values exact: UUID event_id, TIMESTAMP
-- (UTC, no zone, as Snowplow's SQL models expect), INTEGER, DOUBLE coordinates, BOOLEAN flags, and
-- NOT NULL on collector_tstamp, event_id, v_collector and v_etl. Strings are VARCHAR without a
-- length (enrich enforces the lengths); money and se_value are DECIMAL(38, 9) (more decimal places
-- are rounded half-even; the TSV archive keeps them exact); the three JSON columns are JSON holding
-- the TSV's whole self-describing JSON. No secondary index: DuckDB's zone maps already skip row
-- groups by collector_tstamp, and every index slows the load.

-- migration: 1 atomic events and bad rows
CREATE SCHEMA IF NOT EXISTS atomic;

CREATE TABLE IF NOT EXISTS atomic.events (
    -- App
    app_id                    VARCHAR,
    platform                  VARCHAR,
    -- Date/time
    etl_tstamp                TIMESTAMP,
    collector_tstamp          TIMESTAMP NOT NULL,
    dvce_created_tstamp       TIMESTAMP,
    -- Event
    event                     VARCHAR,
    event_id                  UUID NOT NULL,
    txn_id                    INTEGER,
    -- Versioning
    name_tracker              VARCHAR,
    v_tracker                 VARCHAR,
    v_collector               VARCHAR NOT NULL,
    v_etl                     VARCHAR NOT NULL,
    -- User and visit
    user_id                   VARCHAR,
    user_ipaddress            VARCHAR,
    user_fingerprint          VARCHAR,
    domain_userid             VARCHAR,
    domain_sessionidx         INTEGER,
    network_userid            VARCHAR,
    -- Location
    geo_country               VARCHAR,
    geo_region                VARCHAR,
    geo_city                  VARCHAR,
    geo_zipcode               VARCHAR,
    geo_latitude              DOUBLE,
    geo_longitude             DOUBLE,
    geo_region_name           VARCHAR,
    -- IP lookups
    ip_isp                    VARCHAR,
    ip_organization           VARCHAR,
    ip_domain                 VARCHAR,
    ip_netspeed               VARCHAR,
    -- Page
    page_url                  VARCHAR,
    page_title                VARCHAR,
    page_referrer             VARCHAR,
    -- Page URL components
    page_urlscheme            VARCHAR,
    page_urlhost              VARCHAR,
    page_urlport              INTEGER,
    page_urlpath              VARCHAR,
    page_urlquery             VARCHAR,
    page_urlfragment          VARCHAR,
    -- Referrer URL components
    refr_urlscheme            VARCHAR,
    refr_urlhost              VARCHAR,
    refr_urlport              INTEGER,
    refr_urlpath              VARCHAR,
    refr_urlquery             VARCHAR,
    refr_urlfragment          VARCHAR,
    -- Referrer details
    refr_medium               VARCHAR,
    refr_source               VARCHAR,
    refr_term                 VARCHAR,
    -- Marketing
    mkt_medium                VARCHAR,
    mkt_source                VARCHAR,
    mkt_term                  VARCHAR,
    mkt_content               VARCHAR,
    mkt_campaign              VARCHAR,
    -- Custom contexts: the full contexts/1-0-1 self-describing JSON
    contexts                  JSON,
    -- Structured event
    se_category               VARCHAR,
    se_action                 VARCHAR,
    se_label                  VARCHAR,
    se_property               VARCHAR,
    se_value                  DECIMAL(38, 9),
    -- Self-describing event: the full unstruct_event/1-0-0 JSON
    unstruct_event            JSON,
    -- Ecommerce transaction
    tr_orderid                VARCHAR,
    tr_affiliation            VARCHAR,
    tr_total                  DECIMAL(38, 9),
    tr_tax                    DECIMAL(38, 9),
    tr_shipping               DECIMAL(38, 9),
    tr_city                   VARCHAR,
    tr_state                  VARCHAR,
    tr_country                VARCHAR,
    -- Ecommerce transaction item
    ti_orderid                VARCHAR,
    ti_sku                    VARCHAR,
    ti_name                   VARCHAR,
    ti_category               VARCHAR,
    ti_price                  DECIMAL(38, 9),
    ti_quantity               INTEGER,
    -- Page ping
    pp_xoffset_min            INTEGER,
    pp_xoffset_max            INTEGER,
    pp_yoffset_min            INTEGER,
    pp_yoffset_max            INTEGER,
    -- User agent
    useragent                 VARCHAR,
    -- Browser
    br_name                   VARCHAR,
    br_family                 VARCHAR,
    br_version                VARCHAR,
    br_type                   VARCHAR,
    br_renderengine           VARCHAR,
    br_lang                   VARCHAR,
    br_features_pdf           BOOLEAN,
    br_features_flash         BOOLEAN,
    br_features_java          BOOLEAN,
    br_features_director      BOOLEAN,
    br_features_quicktime     BOOLEAN,
    br_features_realplayer    BOOLEAN,
    br_features_windowsmedia  BOOLEAN,
    br_features_gears         BOOLEAN,
    br_features_silverlight   BOOLEAN,
    br_cookies                BOOLEAN,
    br_colordepth             VARCHAR,
    br_viewwidth              INTEGER,
    br_viewheight             INTEGER,
    -- Operating system
    os_name                   VARCHAR,
    os_family                 VARCHAR,
    os_manufacturer           VARCHAR,
    os_timezone               VARCHAR,
    -- Device
    dvce_type                 VARCHAR,
    dvce_ismobile             BOOLEAN,
    dvce_screenwidth          INTEGER,
    dvce_screenheight         INTEGER,
    -- Document
    doc_charset               VARCHAR,
    doc_width                 INTEGER,
    doc_height                INTEGER,
    -- Currency conversion
    tr_currency               VARCHAR,
    tr_total_base             DECIMAL(38, 9),
    tr_tax_base               DECIMAL(38, 9),
    tr_shipping_base          DECIMAL(38, 9),
    ti_currency               VARCHAR,
    ti_price_base             DECIMAL(38, 9),
    base_currency             VARCHAR,
    -- Geolocation
    geo_timezone              VARCHAR,
    -- Click ID
    mkt_clickid               VARCHAR,
    mkt_network               VARCHAR,
    -- ETL tags
    etl_tags                  VARCHAR,
    -- Time the event was sent
    dvce_sent_tstamp          TIMESTAMP,
    -- Cross-domain referrer
    refr_domain_userid        VARCHAR,
    refr_dvce_tstamp          TIMESTAMP,
    -- Derived contexts: the full contexts/1-0-1 self-describing JSON
    derived_contexts          JSON,
    -- Session ID
    domain_sessionid          VARCHAR,
    -- Derived timestamp
    derived_tstamp            TIMESTAMP,
    -- Event schema
    event_vendor              VARCHAR,
    event_name                VARCHAR,
    event_format              VARCHAR,
    event_version             VARCHAR,
    -- Event fingerprint
    event_fingerprint         VARCHAR,
    -- True timestamp
    true_tstamp               TIMESTAMP,
    -- Loader columns
    -- event_fingerprint with '' for NULL: the second half of the dedupe key. A primary key column
    -- cannot be NULL and DuckDB cannot index a generated column, so the loader stores it.
    event_fingerprint_key     VARCHAR NOT NULL,
    -- When the row was committed (UTC), as Snowplow's RDB Loader 4+ adds; incremental models use it.
    load_tstamp               TIMESTAMP NOT NULL,
    -- Redelivery is harmless: an event is stored once per (event_id, event_fingerprint).
    PRIMARY KEY (event_id, event_fingerprint_key)
);

CREATE TABLE IF NOT EXISTS atomic.bad_rows (
    row_hash                  VARCHAR PRIMARY KEY,  -- sha256 of the JSON line: the dedupe key
    schema                    VARCHAR NOT NULL,     -- iglu:com.snowplowanalytics.snowplow.badrows/<type>/jsonschema/M-R-A
    failure_tstamp            TIMESTAMP,            -- data.failure.timestamp, UTC
    processor                 VARCHAR,              -- data.processor as "<artifact>-<version>"
    data                      JSON NOT NULL,        -- the whole self-describing bad row
    loaded_at                 TIMESTAMP NOT NULL    -- when the row was committed, UTC
);
