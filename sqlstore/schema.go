package sqlstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// schema describes the database's tables and indexes in terms both engines share, so that a test
// can compare the schemas the two sets of migrations build: one line per table ("table: col type
// [not null], ..." with types reduced to int, text, bool and real) and one per index ("index
// table(cols) [unique] [partial]"), sorted.
func (s *Store) schema(ctx context.Context) ([]string, error) {
	type col struct {
		name, typ string
		notNull   bool
	}
	tables := map[string][]col{}
	var indexes []string
	family := func(t string) string {
		t = strings.ToLower(t)
		switch {
		case strings.Contains(t, "int") || strings.Contains(t, "serial"):
			return "int"
		case strings.Contains(t, "text") || strings.Contains(t, "char"):
			return "text"
		case strings.Contains(t, "bool"):
			return "bool"
		case t == "blob" || t == "bytea":
			return "bytes"
		case strings.Contains(t, "real") || strings.Contains(t, "double") || strings.Contains(t, "numeric"):
			return "real"
		}
		return t
	}
	if s.d == sqliteDialect {
		rows, err := s.r.QueryContext(ctx, `SELECT m.name, p.name, p.type, p."notnull" OR p.pk > 0
			FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var t string
			var c col
			if err := rows.Scan(&t, &c.name, &c.typ, &c.notNull); err != nil {
				rows.Close()
				return nil, err
			}
			tables[t] = append(tables[t], c)
		}
		rows.Close()
		rows, err = s.r.QueryContext(ctx, `SELECT m.tbl_name, il.name, il."unique", il.partial, il.origin,
			(SELECT group_concat(ii.name, ',') FROM pragma_index_info(il.name) ii)
			FROM sqlite_master m, pragma_index_list(m.name) il
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var t, name, origin, cols string
			var unique, partial bool
			if err := rows.Scan(&t, &name, &unique, &partial, &origin, &cols); err != nil {
				return nil, err
			}
			if origin == "pk" {
				continue // PostgreSQL's primary key indexes are not listed either
			}
			if origin == "u" {
				name = "" // a UNIQUE constraint: its index has a generated name on both engines
			}
			indexes = append(indexes, indexLine(t, name, cols, unique, partial))
		}
	} else {
		rows, err := s.r.QueryContext(ctx, `SELECT table_name, column_name, data_type, is_nullable = 'NO'
			FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var t string
			var c col
			if err := rows.Scan(&t, &c.name, &c.typ, &c.notNull); err != nil {
				rows.Close()
				return nil, err
			}
			tables[t] = append(tables[t], c)
		}
		rows.Close()
		rows, err = s.r.QueryContext(ctx, `SELECT t.relname, i.relname, ix.indisunique, ix.indpred IS NOT NULL,
			ix.indisprimary, c.contype IS NOT NULL,
			(SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
			FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
			JOIN pg_namespace ns ON ns.oid = t.relnamespace
			LEFT JOIN pg_constraint c ON c.conindid = ix.indexrelid AND c.contype = 'u'
			WHERE ns.nspname = current_schema()`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var t, name, cols string
			var unique, partial, primary, constraint bool
			if err := rows.Scan(&t, &name, &unique, &partial, &primary, &constraint, &cols); err != nil {
				return nil, err
			}
			if primary {
				continue
			}
			if constraint {
				name = ""
			}
			indexes = append(indexes, indexLine(t, name, cols, unique, partial))
		}
	}
	var out []string
	for t, cols := range tables {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = c.name + " " + family(c.typ)
			if c.notNull {
				parts[i] += " not null"
			}
		}
		out = append(out, t+": "+strings.Join(parts, ", "))
	}
	out = append(out, indexes...)
	sort.Strings(out)
	return out, nil
}

func indexLine(table, name, cols string, unique, partial bool) string {
	line := fmt.Sprintf("index %s %s(%s)", name, table, cols)
	if unique {
		line += " unique"
	}
	if partial {
		line += " partial"
	}
	return line
}
