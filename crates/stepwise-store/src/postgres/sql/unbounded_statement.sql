-- For a statement that may legitimately run long and waits for nobody (pruning
-- skips locked runs): a worker session's statement_timeout (half its lease) is
-- meant for statements stuck behind another session, not for this.
SET LOCAL statement_timeout = 0
