SELECT r.id, r.workflow, r.idempotency_key
FROM run r
JOIN unnest($1::text[], $2::text[]) AS k(workflow, idem)
  ON r.workflow = k.workflow AND r.idempotency_key = k.idem
