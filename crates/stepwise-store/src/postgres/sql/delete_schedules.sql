-- $1 names: schedules no longer declared. Their ledger stays: the runs they started
-- still say so, and a schedule declared again never fires a time twice.
DELETE FROM schedule WHERE name = ANY ($1)
