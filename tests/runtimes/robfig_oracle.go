// The schedule oracle of the tests: the real robfig/cron v3 (Debian's
// golang-github-robfig-cron-dev, the version Kubernetes and VolSync build with),
// driven the way each controller drives it. Reads one JSON request a line on stdin,
// writes one JSON answer a line on stdout.
//
//	{"mode": "gap", "spec": "24 1 * * *", "zone": "Europe/London", "start": 0, "end": 0,
//	 "seconds": false, "v1star": false, "guard": -1}
//	{"mode": "next", ...same..., "count": 5}
//
// "seconds": the spec has six fields (CNPG); "v1star": mark day-of-month and day-of-week
// as unrestricted whenever their text starts with * or ?, as robfig/cron v1 (CNPG) does;
// "guard": a weekday (0 = Sunday) the job's script requires, checked in the zone at the
// run, or -1.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron"
)

type request struct {
	Mode    string `json:"mode"`
	Spec    string `json:"spec"`
	Zone    string `json:"zone"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Seconds bool   `json:"seconds"`
	V1Star  bool   `json:"v1star"`
	Guard   int    `json:"guard"`
	Count   int    `json:"count"`
}

type answer struct {
	Error  string  `json:"error,omitempty"`
	MaxGap int64   `json:"max_gap"`
	At     int64   `json:"at"`
	Runs   int     `json:"runs"`
	Next   []int64 `json:"next,omitempty"`
}

const starBit = 1 << 63

func schedule(r request) (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(r.Zone)
	if err != nil {
		return nil, nil, err
	}
	if !r.Seconds {
		// The CronJob controller prefixes the job's timeZone; VolSync parses the bare
		// spec in the controller's time.Local. Both end in the same walk in loc.
		s, err := cron.ParseStandard("CRON_TZ=" + r.Zone + " " + r.Spec)
		return s, loc, err
	}
	parser := cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month |
		cron.DowOptional | cron.Descriptor)
	s, err := parser.Parse(r.Spec)
	if err != nil {
		return nil, nil, err
	}
	spec := s.(*cron.SpecSchedule)
	spec.Location = loc
	if r.V1Star {
		fields := strings.Fields(r.Spec)
		if len(fields) >= 4 && strings.ContainsAny(fields[3][:1], "*?") {
			spec.Dom |= starBit
		}
		if len(fields) >= 6 && strings.ContainsAny(fields[5][:1], "*?") {
			spec.Dow |= starBit
		}
	}
	return spec, loc, nil
}

func serve(r request) answer {
	s, loc, err := schedule(r)
	if err != nil {
		return answer{Error: err.Error()}
	}
	t := time.Unix(r.Start, 0).In(loc)
	if r.Mode == "next" {
		var out []int64
		for i := 0; i < r.Count; i++ {
			t = s.Next(t)
			if t.IsZero() {
				break
			}
			out = append(out, t.Unix())
		}
		return answer{Next: out}
	}
	var prev time.Time
	a := answer{}
	for {
		t = s.Next(t)
		if t.IsZero() || t.Unix() > r.End {
			break
		}
		if r.Guard >= 0 && int(t.In(loc).Weekday()) != r.Guard {
			continue
		}
		if !prev.IsZero() {
			if gap := t.Unix() - prev.Unix(); gap > a.MaxGap {
				a.MaxGap, a.At = gap, prev.Unix()
			}
		}
		prev = t
		a.Runs++
	}
	return a
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		line, _ := json.Marshal(serve(r))
		out.Write(append(line, '\n'))
	}
}
