package archive

// This file owns the file formats: JSON lines compressed with gzip, and
// Parquet with its schema from the Go type.

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/parquet-go/parquet-go"

	"github.com/weirstream/weir/codec"
)

// Format is how an archive file is written. A record is kept as a row
// (bytes) in the sink's state until its file is written.
type Format[T any] interface {
	// Ext is the file name's extension, without the dot.
	Ext() string
	// Row encodes a record as it is kept until its file is written.
	Row(v T) ([]byte, error)
	// Write writes a file holding rows, in order.
	Write(w io.Writer, rows [][]byte) error
}

// JSONLines writes each record encoded by c on a line of its own, the
// file compressed with gzip (.jsonl.gz), as Kafka Connect's S3 sink
// writes JSON. c must not write newlines (codec.JSON does not).
func JSONLines[T any](c codec.Codec[T]) Format[T] { return jsonLines[T]{c: c} }

type jsonLines[T any] struct{ c codec.Codec[T] }

func (jsonLines[T]) Ext() string { return "jsonl.gz" }

func (f jsonLines[T]) Row(v T) ([]byte, error) { return f.c.Encode(v) }

func (jsonLines[T]) Write(w io.Writer, rows [][]byte) error {
	// No name and no time in the gzip header: the same rows give the
	// same bytes, so a file written again is the file written before.
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 64<<10)
	for _, r := range rows {
		bw.Write(r)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

// Parquet writes Parquet files (.parquet) whose schema is T's, as
// parquet-go derives it from the struct and its `parquet` tags, with zstd
// compression. T must be a struct. Records are kept as JSON until their
// file is written.
func Parquet[T any]() Format[T] { return parquetFormat[T]{rows: codec.JSON[T]()} }

type parquetFormat[T any] struct{ rows codec.Codec[T] }

func (parquetFormat[T]) Ext() string { return "parquet" }

func (f parquetFormat[T]) Row(v T) ([]byte, error) { return f.rows.Encode(v) }

func (f parquetFormat[T]) Write(w io.Writer, rows [][]byte) error {
	pw := parquet.NewGenericWriter[T](w, parquet.Compression(&parquet.Zstd))
	batch := make([]T, 0, 1024)
	for i, r := range rows {
		v, err := f.rows.Decode(r)
		if err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		batch = append(batch, v)
		if len(batch) == cap(batch) || i == len(rows)-1 {
			if _, err := pw.Write(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return pw.Close()
}

// checkFormat reports what keeps f from writing T, before any record: a
// Parquet file needs a struct whose fields parquet-go can map.
func checkFormat[T any](f Format[T]) (err error) {
	if _, ok := f.(parquetFormat[T]); !ok {
		return nil
	}
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("Parquet needs a struct type, not %s", t)
	}
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(fmt.Sprint("Parquet cannot map ", t, ": ", r))
		}
	}()
	parquet.SchemaOf(reflect.New(t).Interface())
	return nil
}
