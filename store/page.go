package store

// Page asks a list for one page of its order: the items after the key
// After (all when ""), at most Limit of them (all when Limit <= 0). Lists
// that page this way say what their key is (a machine's id).
type Page struct {
	After string
	Limit int
}
