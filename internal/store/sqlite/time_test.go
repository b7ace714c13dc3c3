package sqlite

import (
	"math"
	"testing"
	"time"
)

// TestEncodeTime pins the encoding at the edges of the int64 range, where
// UnixMicro's arithmetic wraps, and the truncation of sub-microsecond parts
// on both sides of 1970.
func TestEncodeTime(t *testing.T) {
	tests := []struct {
		name    string
		t       time.Time
		want    int64
		wantErr bool
	}{
		{"epoch", time.Unix(0, 0), 0, false},
		{"no expiry", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), 253402300799_000000, false},
		{"year 1", time.Time{}, -62135596800_000000, false},
		{"truncated after 1970", time.Unix(0, 1999), 1, false},
		{"truncated before 1970", time.Unix(0, -1), -1, false},
		{"zone ignored", time.Unix(1, 0).In(time.FixedZone("UTC+14", 14*3600)), 1_000000, false},
		{"min", minTime, math.MinInt64, false},
		{"max", maxTime, math.MaxInt64, false},
		{"before min", minTime.Add(-time.Microsecond), 0, true},
		{"after max", maxTime.Add(time.Microsecond), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeTime("t", tt.t)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("encodeTime(%v) = %d, %v; want %d, error %t", tt.t, got, err, tt.want, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if back := decodeTime(got); !back.Equal(tt.t.Truncate(time.Microsecond)) || back.Location() != time.UTC {
				t.Errorf("decodeTime(%d) = %v, want %v in UTC", got, back, tt.t.Truncate(time.Microsecond))
			}
		})
	}
}

func TestClampTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want int64
	}{
		{minTime.Add(-time.Hour), math.MinInt64},
		{maxTime.Add(time.Hour), math.MaxInt64},
		{time.Unix(0, 1999), 1},
	}
	for _, tt := range tests {
		if got := clampTime(tt.t); got != tt.want {
			t.Errorf("clampTime(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
}
