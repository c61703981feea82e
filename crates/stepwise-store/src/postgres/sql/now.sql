SELECT stepwise_now()
