package writer

import (
	"bytes"
	"encoding/csv"

	"github.com/kloud/kloud/internal/jsonenc"
	"github.com/kloud/kloud/store"
)

// descView is what the reports show of a point's desc (its groupby and
// metadata). A month repeats each machine's desc in every period: a view
// is rendered once per desc a store names (store.RatedPoint.DescID), not
// once per point.
type descView struct {
	// machineID is the groupby's machine_id, which orders a report.
	machineID string
	// The maps in the JSON report, indented as a point's fields.
	jsonGroupby, jsonMetadata []byte
	// The CSV columns machine_id to region, as encoding/csv writes them.
	csv []byte
}

func newDescView(p *store.RatedPoint) *descView {
	// The CSV columns read from a point's desc.
	fields := CSVColumns()[2:7]
	for i, k := range fields {
		fields[i] = field(p, k)
	}
	return &descView{
		machineID:    p.Groupby["machine_id"],
		jsonGroupby:  jsonenc.StringMapIndent(nil, nonNil(p.Groupby), lnField, lnValue),
		jsonMetadata: jsonenc.StringMapIndent(nil, nonNil(p.Metadata), lnField, lnValue),
		csv:          csvFields(fields...),
	}
}

// csvFields is fields as encoding/csv writes them in a row, without the
// row's end.
func csvFields(fields ...string) []byte {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	// A bytes.Buffer does not fail.
	_ = cw.Write(fields)
	cw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// maxDescViews bounds the views an orchestrator remembers; when full it
// starts over.
const maxDescViews = 32 << 10

// descViews remembers the views of the descs a store named, by DescID.
// Only the goroutine that reads a pass's periods uses it: the feeds
// rendering them read the views a period holds.
type descViews map[uint64]*descView

// of is p's view: remembered when the store named its desc.
func (dv *descViews) of(p *store.RatedPoint) *descView {
	if p.DescID == 0 {
		return newDescView(p)
	}
	if v, ok := (*dv)[p.DescID]; ok {
		return v
	}
	if *dv == nil || len(*dv) >= maxDescViews {
		*dv = descViews{}
	}
	v := newDescView(p)
	(*dv)[p.DescID] = v
	return v
}
