// Package ratingbridge turns machine uptime into priced usage the way
// OpenStack CloudKitty does. A Collector reads the machines' state history
// and builds, for each closed period and scope (owner), a DataFrame of
// running hours per machine; a Pipeline of rating modules (noop, hashmap),
// enabled and ordered by priority from the store, prices it; a Processor
// drives both period by period and commits each rated period atomically.
// The same pipeline answers quotes and cost estimates. Sub-packages:
// dataframe (the data model and its JSON forms), hashmap (CloudKitty's
// hashmap module, compiled and fast) and writer (CSV and JSON reports).
package ratingbridge
