-- $1 key: locks its row before an admission.
SELECT key FROM concurrency_key WHERE key = $1 FOR UPDATE
