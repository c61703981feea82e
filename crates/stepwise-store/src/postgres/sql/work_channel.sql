SELECT 'stepwise_work_' || current_schema()
