#!/bin/sh
# Hands the shipment to the carrier and exits at once: the step ends when the
# carrier calls back with this attempt's token.
cat > /dev/null
mkdir -p outbox
printf %s "$STEPWISE_CALLBACK_TOKEN" > "outbox/$STEPWISE_RUN_ID.token"
echo '{"submitted": true}'
