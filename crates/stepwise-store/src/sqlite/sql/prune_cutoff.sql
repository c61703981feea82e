SELECT now_ms - ?1 FROM db_clock
