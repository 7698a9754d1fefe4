-- Pulls "since an RFC 3339 time" turn the time into a position: the owner's last event
-- recorded at or before it. This index answers that without scanning the owner's log.
CREATE INDEX events_owner_recorded ON events (owner, recorded_at, position);
