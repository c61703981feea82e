-- ?1 JSON array of claimed step seqs: what each claim needs from its run.
SELECT s.seq, r.id, r.workflow, r.workflow_version, r.input,
       (SELECT json_group_object(d.name, json(coalesce(d.output, 'null')))
        FROM step d, json_each(d.dependents) x
        WHERE d.run_id = s.run_id AND x.value = lower(hex(s.id))) AS dependency_outputs
FROM json_each(?1) j
JOIN step s ON s.seq = j.value
JOIN run r ON r.id = s.run_id
