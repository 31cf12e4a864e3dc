package kloud

import (
	"testing"
	"time"
)

func TestConfigExplicitZeroSurvives(t *testing.T) {
	var unset Config
	unset.setDefaults()
	if *unset.RatingWaitPeriods != 1 || *unset.ShutdownGrace != 30*time.Second || unset.IdleLimit != 0 || unset.Workers != 4 {
		t.Fatalf("defaults: %+v", unset)
	}
	zero := Config{RatingWaitPeriods: new(0), ShutdownGrace: new(time.Duration(0))}
	zero.setDefaults()
	if *zero.RatingWaitPeriods != 0 || *zero.ShutdownGrace != 0 {
		t.Fatalf("explicit zeros became %d, %v", *zero.RatingWaitPeriods, *zero.ShutdownGrace)
	}
	for name, c := range map[string]Config{
		"negative wait":    {RatingWaitPeriods: new(-1)},
		"negative grace":   {ShutdownGrace: new(-time.Second)},
		"negative lease":   {JobLease: -time.Second},
		"negative idle":    {IdleLimit: -time.Minute},
		"negative workers": {Workers: -1},
	} {
		if err := c.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
