package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// flagSet is a [flag.FlagSet] that knows each flag's az-style long and short names, so usage
// reads like az's ("-g, --resource-group") and "which flags were given" answers with the long
// name whichever spelling was used. The flag package accepts -x and --x alike.
type flagSet struct {
	fs    *flag.FlagSet
	defs  []flagDef
	short map[string]string // short name -> long name
	set   map[string]bool   // long names given on the command line, after parse
}

type flagDef struct {
	long, short, arg, usage, def string
	hidden                       bool
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flagSet {
	f := &flagSet{fs: flag.NewFlagSet(name, flag.ContinueOnError), short: map[string]string{}}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		w := f.fs.Output()
		fmt.Fprintf(w, "Usage: aks %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		for _, d := range f.defs {
			if d.hidden {
				continue
			}
			names := "    --" + d.long
			if d.short != "" {
				names = "-" + d.short + ", --" + d.long
			}
			if d.arg != "" {
				names += " " + d.arg
			}
			u := d.usage
			if d.def != "" {
				u += " (default " + d.def + ")"
			}
			fmt.Fprintf(w, "  %s\n      \t%s\n", names, u)
		}
	}
	return f
}

func (f *flagSet) add(long, short, arg, def, usage string) {
	f.defs = append(f.defs, flagDef{long: long, short: short, arg: arg, def: def, usage: usage})
	if short != "" {
		f.short[short] = long
	}
}

func (f *flagSet) String(p *string, long, short, arg, def, usage string) {
	f.fs.StringVar(p, long, def, usage)
	if short != "" {
		f.fs.StringVar(p, short, def, usage)
	}
	if def != "" {
		def = fmt.Sprintf("%q", def)
	}
	f.add(long, short, arg, def, usage)
}

func (f *flagSet) Bool(p *bool, long, short, usage string) {
	f.fs.BoolVar(p, long, false, usage)
	if short != "" {
		f.fs.BoolVar(p, short, false, usage)
	}
	f.add(long, short, "", "", usage)
}

func (f *flagSet) Int(p *int, long, short, arg, usage string) {
	f.fs.IntVar(p, long, 0, usage)
	if short != "" {
		f.fs.IntVar(p, short, 0, usage)
	}
	f.add(long, short, arg, "", usage)
}

// HiddenDuration is a flag left out of the usage text.
func (f *flagSet) HiddenDuration(p *time.Duration, long string, def time.Duration, usage string) {
	f.fs.DurationVar(p, long, def, usage)
	f.defs = append(f.defs, flagDef{long: long, usage: usage, hidden: true})
}

// Parse parses args; positional arguments are an error (every input is a flag).
func (f *flagSet) Parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q (every input is a flag)", f.fs.Arg(0))
		fmt.Fprintln(f.fs.Output(), err)
		f.fs.Usage()
		return err
	}
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) {
		name := fl.Name
		if long, ok := f.short[name]; ok {
			name = long
		}
		f.set[name] = true
	})
	return nil
}

// Set reports whether the flag with this long name was given.
func (f *flagSet) Set(long string) bool { return f.set[long] }

// usageError is a command line the program cannot act on (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// outputFormat checks the value of -o/--output.
func outputFormat(v string) (string, error) {
	switch strings.ToLower(v) {
	case "table", "":
		return "table", nil
	case "json":
		return "json", nil
	}
	return "", usagef("--output %q: want table or json", v)
}
