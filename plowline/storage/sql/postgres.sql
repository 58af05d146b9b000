-- PostgreSQL storage: {schema}.events (the 131 enriched fields, typed) and {schema}.bad_rows.
--
-- plowline/storage/postgres.py applies each migration below once, in order, in one transaction
-- under an advisory lock, and records it in {schema}.plowline_migrations. Append new migrations at
-- the end with the next number; never edit one that has shipped. {schema} is the configured
-- schema (storage.postgres.schema_name, default atomic), quoted; write other braces doubled.
--
-- Types follow Snowplow's atomic.events (Postgres loader / RDB loader DDL) where that keeps values
-- exact: uuid event_id, timestamp (UTC, no zone, as Snowplow's SQL models expect), integer, double
-- precision coordinates, boolean flags, and NOT NULL on collector_tstamp, event_id, v_collector and
-- v_etl. Differences, on purpose: strings are text, not varchar(n)/char(n) (enrich enforces the
-- lengths, and char(n) pads); money and se_value are unconstrained numeric, keeping the TSV's
-- value and scale exactly (Snowplow: double precision / decimal(18,2)); the three JSON columns are
-- jsonb holding the TSV's whole self-describing JSON (Snowplow's Postgres loader shreds them into
-- tables instead).

-- migration: 1 atomic events and bad rows
CREATE TABLE IF NOT EXISTS {schema}.events (
    -- App
    app_id                    text,
    platform                  text,
    -- Date/time
    etl_tstamp                timestamp,
    collector_tstamp          timestamp NOT NULL,
    dvce_created_tstamp       timestamp,
    -- Event
    event                     text,
    event_id                  uuid NOT NULL,
    txn_id                    integer,
    -- Versioning
    name_tracker              text,
    v_tracker                 text,
    v_collector               text NOT NULL,
    v_etl                     text NOT NULL,
    -- User and visit
    user_id                   text,
    user_ipaddress            text,
    user_fingerprint          text,
    domain_userid             text,
    domain_sessionidx         integer,
    network_userid            text,
    -- Location
    geo_country               text,
    geo_region                text,
    geo_city                  text,
    geo_zipcode               text,
    geo_latitude              double precision,
    geo_longitude             double precision,
    geo_region_name           text,
    -- IP lookups
    ip_isp                    text,
    ip_organization           text,
    ip_domain                 text,
    ip_netspeed               text,
    -- Page
    page_url                  text,
    page_title                text,
    page_referrer             text,
    -- Page URL components
    page_urlscheme            text,
    page_urlhost              text,
    page_urlport              integer,
    page_urlpath              text,
    page_urlquery             text,
    page_urlfragment          text,
    -- Referrer URL components
    refr_urlscheme            text,
    refr_urlhost              text,
    refr_urlport              integer,
    refr_urlpath              text,
    refr_urlquery             text,
    refr_urlfragment          text,
    -- Referrer details
    refr_medium               text,
    refr_source               text,
    refr_term                 text,
    -- Marketing
    mkt_medium                text,
    mkt_source                text,
    mkt_term                  text,
    mkt_content               text,
    mkt_campaign              text,
    -- Custom contexts: the full contexts/1-0-1 self-describing JSON
    contexts                  jsonb,
    -- Structured event
    se_category               text,
    se_action                 text,
    se_label                  text,
    se_property               text,
    se_value                  numeric,
    -- Self-describing event: the full unstruct_event/1-0-0 JSON
    unstruct_event            jsonb,
    -- Ecommerce transaction
    tr_orderid                text,
    tr_affiliation            text,
    tr_total                  numeric,
    tr_tax                    numeric,
    tr_shipping               numeric,
    tr_city                   text,
    tr_state                  text,
    tr_country                text,
    -- Ecommerce transaction item
    ti_orderid                text,
    ti_sku                    text,
    ti_name                   text,
    ti_category               text,
    ti_price                  numeric,
    ti_quantity               integer,
    -- Page ping
    pp_xoffset_min            integer,
    pp_xoffset_max            integer,
    pp_yoffset_min            integer,
    pp_yoffset_max            integer,
    -- User agent
    useragent                 text,
    -- Browser
    br_name                   text,
    br_family                 text,
    br_version                text,
    br_type                   text,
    br_renderengine           text,
    br_lang                   text,
    br_features_pdf           boolean,
    br_features_flash         boolean,
    br_features_java          boolean,
    br_features_director      boolean,
    br_features_quicktime     boolean,
    br_features_realplayer    boolean,
    br_features_windowsmedia  boolean,
    br_features_gears         boolean,
    br_features_silverlight   boolean,
    br_cookies                boolean,
    br_colordepth             text,
    br_viewwidth              integer,
    br_viewheight             integer,
    -- Operating system
    os_name                   text,
    os_family                 text,
    os_manufacturer           text,
    os_timezone               text,
    -- Device
    dvce_type                 text,
    dvce_ismobile             boolean,
    dvce_screenwidth          integer,
    dvce_screenheight         integer,
    -- Document
    doc_charset               text,
    doc_width                 integer,
    doc_height                integer,
    -- Currency conversion
    tr_currency               text,
    tr_total_base             numeric,
    tr_tax_base               numeric,
    tr_shipping_base          numeric,
    ti_currency               text,
    ti_price_base             numeric,
    base_currency             text,
    -- Geolocation
    geo_timezone              text,
    -- Click ID
    mkt_clickid               text,
    mkt_network               text,
    -- ETL tags
    etl_tags                  text,
    -- Time the event was sent
    dvce_sent_tstamp          timestamp,
    -- Cross-domain referrer
    refr_domain_userid        text,
    refr_dvce_tstamp          timestamp,
    -- Derived contexts: the full contexts/1-0-1 self-describing JSON
    derived_contexts          jsonb,
    -- Session ID
    domain_sessionid          text,
    -- Derived timestamp
    derived_tstamp            timestamp,
    -- Event schema
    event_vendor              text,
    event_name                text,
    event_format              text,
    event_version             text,
    -- Event fingerprint
    event_fingerprint         text,
    -- True timestamp
    true_tstamp               timestamp
);

-- Redelivery is harmless: an event is stored once per (event_id, event_fingerprint). The
-- fingerprint is NULL when its enrichment is off, and NULLs never conflict in a unique index, so
-- the key uses '' for NULL (NULLS NOT DISTINCT would need PostgreSQL 15).
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id_fingerprint_key
    ON {schema}.events (event_id, (COALESCE(event_fingerprint, '')));

-- Time-range scans for the models and the dashboard; events arrive roughly in collector_tstamp
-- order, so a BRIN index is tiny and costs the load almost nothing.
CREATE INDEX IF NOT EXISTS events_collector_tstamp_brin ON {schema}.events USING brin (collector_tstamp);

CREATE TABLE IF NOT EXISTS {schema}.bad_rows (
    row_hash                  text PRIMARY KEY,  -- sha256 of the JSON line: the dedupe key
    schema                    text NOT NULL,     -- iglu:com.snowplowanalytics.snowplow.badrows/<type>/jsonschema/M-R-A
    failure_tstamp            timestamp,         -- data.failure.timestamp, UTC
    processor                 text,              -- data.processor as "<artifact>-<version>"
    data                      jsonb NOT NULL,    -- the whole self-describing bad row
    loaded_at                 timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE INDEX IF NOT EXISTS bad_rows_failure_tstamp ON {schema}.bad_rows (failure_tstamp);

-- migration: 2 events.load_tstamp
-- When the row was committed (UTC), as Snowplow's RDB Loader 4+ adds; incremental models use it.
ALTER TABLE {schema}.events ADD COLUMN IF NOT EXISTS load_tstamp timestamp DEFAULT (now() AT TIME ZONE 'UTC');

-- migration: 3 events.load_tstamp BRIN index
-- Incremental models read only what was loaded since their last run (load_tstamp > high-water
-- mark). Rows are appended in load order, so a BRIN index lets that be a scan of the newest
-- blocks instead of the whole table, at almost no cost to the load. A BRIN index only narrows
-- ranges it has summarized: autosummarize has autovacuum summarize each range once it is full,
-- and the models runner summarizes what is new before it reads.
CREATE INDEX IF NOT EXISTS events_load_tstamp_brin ON {schema}.events USING brin (load_tstamp)
    WITH (autosummarize = on);
ALTER INDEX {schema}.events_collector_tstamp_brin SET (autosummarize = on);
