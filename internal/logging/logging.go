package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Formats of New.
const (
	// FormatJSON writes one JSON object a line.
	FormatJSON = "json"
	// FormatConsole writes human-readable lines.
	FormatConsole = "console"
	// FormatAuto is FormatConsole on a terminal, FormatJSON otherwise.
	FormatAuto = "auto"
)

// Options configures New.
type Options struct {
	// Format is FormatJSON, FormatConsole or FormatAuto; "" means
	// FormatAuto.
	Format string
	// Level is the lowest level logged; nil means slog.LevelInfo.
	Level slog.Leveler
	// NoColor turns colours off in the console format.
	NoColor bool
}

// New returns a logger that writes to w through zerolog.
func New(w io.Writer, o Options) (*slog.Logger, error) {
	h, err := NewHandler(w, o)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// NewHandler returns the slog.Handler behind New.
func NewHandler(w io.Writer, o Options) (slog.Handler, error) {
	format := o.Format
	if format == "" || format == FormatAuto {
		format = FormatJSON
		if IsTerminal(w) {
			format = FormatConsole
		}
	}
	switch format {
	case FormatJSON:
	case FormatConsole:
		w = zerolog.ConsoleWriter{Out: w, NoColor: o.NoColor || !IsTerminal(w), TimeFormat: "2006-01-02T15:04:05.000Z07:00"}
	default:
		return nil, fmt.Errorf("log format %q: want json, console or auto", o.Format)
	}
	level := o.Level
	if level == nil {
		level = slog.LevelInfo
	}
	zl := zerolog.New(w).Level(zerolog.TraceLevel)
	return &handler{zl: zl, level: level}, nil
}

// ParseLevel parses "debug", "info", "warn" or "error" (any case).
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// handler is a slog.Handler writing zerolog events. Attributes added with
// WithAttrs are rendered once into the zerolog context; groups become
// dotted key prefixes ("group.key").
type handler struct {
	zl     zerolog.Logger
	level  slog.Leveler
	prefix string // of the open groups, "a.b." or ""
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	e := h.zl.WithLevel(zlevel(r.Level))
	if e == nil {
		return nil
	}
	if !r.Time.IsZero() {
		e = e.Str(zerolog.TimestampFieldName, r.Time.Format(time.RFC3339Nano))
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(e, h.prefix, a)
		return true
	})
	e.Msg(r.Message)
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := *h
	ctx := h.zl.With()
	for _, a := range attrs {
		ctx = addCtx(ctx, h.prefix, a)
	}
	c.zl = ctx.Logger()
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

func zlevel(l slog.Level) zerolog.Level {
	switch {
	case l < slog.LevelDebug:
		return zerolog.TraceLevel
	case l < slog.LevelInfo:
		return zerolog.DebugLevel
	case l < slog.LevelWarn:
		return zerolog.InfoLevel
	case l < slog.LevelError:
		return zerolog.WarnLevel
	default:
		return zerolog.ErrorLevel
	}
}

// reserved are the keys zerolog writes itself.
var reserved = map[string]bool{
	zerolog.MessageFieldName:   true,
	zerolog.LevelFieldName:     true,
	zerolog.TimestampFieldName: true,
}

// fields is what a zerolog Event and a zerolog Context have in common,
// as far as attributes go.
type fields[T any] interface {
	Str(key, val string) T
	Int64(key string, i int64) T
	Uint64(key string, i uint64) T
	Float64(key string, f float64) T
	Bool(key string, b bool) T
	Dur(key string, d time.Duration) T
	Interface(key string, i any) T
}

func addAttr(e *zerolog.Event, prefix string, a slog.Attr) {
	addField[*zerolog.Event](e, prefix, a)
}

func addCtx(c zerolog.Context, prefix string, a slog.Attr) zerolog.Context {
	return addField[zerolog.Context](c, prefix, a)
}

// addField adds one attribute, resolving LogValuers and flattening groups.
func addField[T fields[T]](f T, prefix string, a slog.Attr) T {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return f
	}
	v := a.Value
	key := prefix + a.Key
	if reserved[key] {
		// Never write a second "message", "level" or "time": JSON
		// readers keep only one of duplicate keys.
		key += "_"
	}
	switch v.Kind() {
	case slog.KindGroup:
		attrs := v.Group()
		if len(attrs) == 0 {
			return f
		}
		p := prefix
		if a.Key != "" {
			p = key + "."
		}
		for _, ga := range attrs {
			f = addField(f, p, ga)
		}
		return f
	case slog.KindString:
		return f.Str(key, v.String())
	case slog.KindInt64:
		return f.Int64(key, v.Int64())
	case slog.KindUint64:
		return f.Uint64(key, v.Uint64())
	case slog.KindFloat64:
		return f.Float64(key, v.Float64())
	case slog.KindBool:
		return f.Bool(key, v.Bool())
	case slog.KindDuration:
		// As slog's JSON handler does: nanoseconds in JSON; the
		// duration's text is easier to read, so give that.
		return f.Str(key, v.Duration().String())
	case slog.KindTime:
		return f.Str(key, v.Time().Format(time.RFC3339Nano))
	}
	switch x := v.Any().(type) {
	case error:
		return f.Str(key, x.Error())
	case fmt.Stringer:
		return f.Str(key, x.String())
	case []string:
		return f.Interface(key, slices.Clone(x))
	default:
		return f.Interface(key, x)
	}
}
