SELECT now_ms FROM db_clock
