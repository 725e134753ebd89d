-- events.db's secondary indexes (only the inspector's filters read them), created at every
-- open after events.sql and after a first download (EventLog::create_secondary_indexes).
CREATE INDEX IF NOT EXISTS events_hlc ON events (hlc_timestamp);
CREATE INDEX IF NOT EXISTS events_type ON events (event_type);
