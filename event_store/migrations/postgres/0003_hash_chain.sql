-- Tamper evidence (event_store/chain.py): each event's hash covers the previous hash of its
-- owner's chain and the event's content; the head record closes each chain, so that deleting
-- an owner's last event is caught too. Written in the same transaction as the events.
ALTER TABLE events ADD COLUMN hash bytea;
CREATE TABLE event_chains (
    owner     uuid PRIMARY KEY,
    position  bigint NOT NULL,
    hash      bytea NOT NULL
);
-- Events recorded before this migration have no hash until they are sealed (chain.seal, run by
-- `sync-server migrate`); this index finds them without a scan of the log, and stays empty.
CREATE INDEX events_unsealed ON events (owner, position) WHERE hash IS NULL;
