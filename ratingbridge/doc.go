// Package ratingbridge turns machine uptime into priced usage the way
// OpenStack CloudKitty does: an uptime collector, a rating pipeline (noop,
// hashmap), rated storage with summaries, and a writer pipeline (CSV, JSON).
package ratingbridge
