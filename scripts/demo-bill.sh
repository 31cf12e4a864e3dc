# demo-bill.sh: sourced by demo.sh once the stack is destroyed. The demo
# server rates 10-second periods so the bill of the run is ready in
# seconds; a real deployment uses the default hour.
echo "waiting for the periods of the run to close (10 s periods, 1 period of grace)"
sleep 22
k rating process
echo "-- the bill from the rating summary, by machine:"
k rating summary --groupby machine_id,size
echo "-- the total from the rating summary:"
k rating summary
echo "-- the CSV report (one row per machine and period, then the total):"
REPORT=$("$KLOUD" report list -o json | sed -n 's/.*"name": *"\([^"]*\.csv\)".*/\1/p' | head -n1)
k report get "$REPORT" | tail -n 4
