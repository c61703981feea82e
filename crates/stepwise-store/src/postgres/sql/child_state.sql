-- $1 run id: a child run's status and error, read without a lock.
SELECT status, error FROM run WHERE id = $1
