#!/bin/sh
# Undoes reserve.sh: runs when the run fails, times out or is cancelled.
cat > /dev/null
echo "released $STEPWISE_RUN_ID" >> ledger
echo '{}'
