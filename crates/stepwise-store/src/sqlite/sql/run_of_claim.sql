-- ?1 JSON array of claimed step seqs: what each claim needs from its run.
SELECT s.seq, r.id, r.workflow, r.workflow_version, r.input
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
