-- One row per projection: the version of the projector code its rows were built with, and the
-- epoch that pull cursors carry. A projection rebuilt under a new definition gets a new epoch,
-- so every cursor issued before is answered with reset instead of being misread.
CREATE TABLE projection_state (
    name        TEXT PRIMARY KEY,
    definition  INTEGER NOT NULL,
    epoch       INTEGER NOT NULL
);
INSERT INTO projection_state (name, definition, epoch) VALUES ('read_tables', 1, 1);
