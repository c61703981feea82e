SELECT 'stepwise_revoke_' || current_schema()
