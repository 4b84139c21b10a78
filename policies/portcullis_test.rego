# Tests of the default policy: `portcullis policy test policies/`.
package portcullis_test

import rego.v1

import data.portcullis

base_statement := {
	"text": "", "fingerprint": "", "kind": "select", "command_tag": "SELECT",
	"read_only": true, "tables": [{"schema": "public", "name": "users", "access": "read"}],
	"columns": [], "functions": [], "has_where": false, "limit": null, "flags": [],
}

mk(groups, patch) := {
	"version": 1,
	"user": {"sub": "u1", "email": "u1@example.com", "name": "U", "groups": groups, "issuer": "https://idp"},
	"client": {"addr": "127.0.0.1", "application_name": "psql"},
	"connection": {"name": "prod", "kind": "postgres", "database": "app"},
	"session": {"id": "s", "in_transaction": false},
	"statement": object.union(base_statement, patch),
	"now": "2026-11-23T10:00:00Z",
}

delete_all := {
	"kind": "delete", "command_tag": "DELETE", "read_only": false,
	"tables": [{"schema": "public", "name": "users", "access": "write"}],
	"flags": ["bulk_write", "no_where"],
}

test_reader_may_select if {
	portcullis.decision.action == "allow" with input as mk(["analyst"], {})
}

test_outsider_denied if {
	d := portcullis.decision with input as mk(["marketing"], {})
	d.action == "deny"
}

test_reader_may_not_write if {
	d := portcullis.decision with input as mk(["analyst"], {"kind": "insert", "read_only": false})
	d.action == "deny"
}

test_writer_may_update_with_where if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "update", "read_only": false, "has_where": true})
	d.action == "allow"
}

test_delete_without_where_denied if {
	d := portcullis.decision with input as mk(["dev"], delete_all)
	d.action == "deny"
	d.reasons == ["DELETE without WHERE on public.users"]
}

test_ddl_needs_dba_approval if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "create_table", "read_only": false, "flags": ["ddl"]})
	d.action == "approve"
	d.approval.groups == ["dba"]
}

test_truncate_needs_approval if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "truncate", "read_only": false, "flags": ["bulk_write"]})
	d.action == "approve"
}

test_copy_needs_approval_unless_etl if {
	copy := {"kind": "copy", "read_only": true, "flags": ["copy_to"]}
	d1 := portcullis.decision with input as mk(["dev"], copy)
	d1.action == "approve"
	d2 := portcullis.decision with input as mk(["etl"], copy)
	d2.action == "allow"
}

test_copy_program_denied_even_for_etl if {
	d := portcullis.decision with input as mk(["etl", "dba"], {"kind": "copy", "read_only": false, "flags": ["copy_from", "copy_program"]})
	d.action == "deny"
}

test_unparsed_denied if {
	d := portcullis.decision with input as mk(["dba"], {"kind": "unparsed", "read_only": false, "flags": ["parse_error"]})
	d.action == "deny"
}

test_alter_system_denied if {
	d := portcullis.decision with input as mk(["dba"], {"kind": "alter_system", "read_only": false, "flags": ["admin", "alter_system"]})
	d.action == "deny"
}

test_role_change_denied if {
	d := portcullis.decision with input as mk(["dba"], {"kind": "set", "flags": ["role_change"]})
	d.action == "deny"
}

test_dynamic_sql_needs_approval if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "do", "read_only": false, "flags": ["dynamic_sql"]})
	d.action == "approve"
}

test_bulk_insert_select_needs_approval if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "insert", "read_only": false, "flags": ["bulk_write"]})
	d.action == "approve"
}

test_nested_delete_without_where_denied if {
	d := portcullis.decision with input as mk(["dev"], {
		"kind": "select", "read_only": false,
		"tables": [{"schema": "public", "name": "users", "access": "write"}],
		"flags": ["bulk_write", "no_where", "write_in_cte"],
	})
	d.action == "deny"
	d.reasons == ["UPDATE/DELETE (inside a CTE, PREPARE or EXPLAIN) without WHERE on public.users"]
}

test_procedure_call_needs_approval if {
	d := portcullis.decision with input as mk(["dev"], {"kind": "call", "read_only": false, "flags": ["procedure_call"]})
	d.action == "approve"
}
