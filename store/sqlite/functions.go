package sqlite

import (
	"database/sql/driver"
	"fmt"

	"github.com/shopspring/decimal"
	"modernc.org/sqlite"
)

// registerFunctions installs the SQL functions the store's queries use on
// this store's own driver.
func registerFunctions(drv *sqlite.Driver) error {
	// kloud_decimal_sum(text) sums decimal strings exactly (SQLite's SUM
	// would go through float) and returns the sum as a decimal string.
	if err := drv.RegisterFunction("kloud_decimal_sum", &sqlite.FunctionImpl{
		NArgs:         1,
		Deterministic: true,
		MakeAggregate: func(sqlite.FunctionContext) (sqlite.AggregateFunction, error) {
			return &decimalSum{}, nil
		},
	}); err != nil {
		return fmt.Errorf("register kloud_decimal_sum: %w", err)
	}
	return nil
}

// decimalSum is one evaluation of kloud_decimal_sum.
type decimalSum struct {
	sum decimal.Decimal
}

func (a *decimalSum) add(v driver.Value, sign int) error {
	var d decimal.Decimal
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		var err error
		if d, err = decimal.NewFromString(x); err != nil {
			return fmt.Errorf("kloud_decimal_sum: %q is not a decimal", x)
		}
	case []byte:
		var err error
		if d, err = decimal.NewFromString(string(x)); err != nil {
			return fmt.Errorf("kloud_decimal_sum: %q is not a decimal", x)
		}
	case int64:
		d = decimal.NewFromInt(x)
	default:
		return fmt.Errorf("kloud_decimal_sum: cannot sum a %T", v)
	}
	if sign < 0 {
		a.sum = a.sum.Sub(d)
	} else {
		a.sum = a.sum.Add(d)
	}
	return nil
}

func (a *decimalSum) Step(_ *sqlite.FunctionContext, args []driver.Value) error {
	return a.add(args[0], 1)
}

func (a *decimalSum) WindowInverse(_ *sqlite.FunctionContext, args []driver.Value) error {
	return a.add(args[0], -1)
}

func (a *decimalSum) WindowValue(*sqlite.FunctionContext) (driver.Value, error) {
	return a.sum.String(), nil
}

func (a *decimalSum) Final(*sqlite.FunctionContext) {}
