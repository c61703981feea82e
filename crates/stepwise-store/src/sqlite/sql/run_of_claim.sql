-- ?1 JSON array of claimed step seqs, ?2 the claiming worker: what each claim needs
-- from its run. A compensation also gets the output of the step it undoes and why
-- the run stopped. The worker's lease expiry rides along (one statement less).
SELECT s.seq, r.id, r.workflow, r.workflow_version, r.input,
       (SELECT json_group_object(d.name, json(coalesce(d.output, 'null')))
        FROM step d, json_each(d.dependents) x
        WHERE d.run_id = s.run_id AND x.value = lower(hex(s.id))) AS dependency_outputs,
       (SELECT o.output FROM step o
        WHERE o.run_id = s.run_id AND o.name = s.compensates) AS compensated_output,
       r.error,
       (SELECT w.expires_at FROM worker w WHERE w.id = ?2) AS lease_expires_at
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
