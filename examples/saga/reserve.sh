#!/bin/sh
# Reserves stock for the order (here: a line in the ledger) and says which.
cat > /dev/null
echo "reserved $STEPWISE_RUN_ID" >> ledger
printf '{"reservation": "r-%s"}\n' "$STEPWISE_RUN_ID"
