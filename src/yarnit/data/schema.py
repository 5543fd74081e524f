"""Dataset schemas: inferred from data, curated by people as YAML, checked strictly.

A schema declares each column's type, nullability, range, domain (allowed
values), uniqueness, PII treatment and the environments it exists in (the label
is absent at serving time), plus dataset-level expectations: the data-subject
column, slices whose volume must not collapse, label sanity, volume change and
drift thresholds. Example (``schema.yaml``)::

    dataset: impressions
    subject: user_id
    slices: [country]
    label: {column: clicked, positive_rate: [0.005, 0.2]}
    columns:
      user_id: {type: string, nullable: false, pii: hash}
      country: {type: string, domain: [DE, FR, US]}
      price:   {type: float64, min: 0, max: 500}
      clicked: {type: bool, environments: [training]}
      age:     {type: int64, restricted: {bucket: [18, 25, 35, 50, 65], as: age_band}}

A ``restricted`` column (book CH4-R3) reaches feature views and training frames
only through its declared compliant transform, written to a new column (``as``):
``bucket`` (half-open numeric ranges) or ``map`` (value → group, others →
``other``); ``restricted: true`` declares no transform, so the column is readable
only raw, with a token carrying the ``read-restricted`` role, and audited (see
:mod:`yarnit.access`).

A typo is an error that names the file, the line and the closest valid key,
never a silently ignored setting.

Example:
    >>> s = DatasetSchema.from_yaml("columns:\\n  price: {type: float64, min: 0}\\n")
    >>> s.columns["price"].min, s.columns["price"].nullable
    (0.0, True)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml

from yarnit.core.hashing import sha256_json

from .errors import SchemaError

PiiAction = Literal["drop", "hash", "keep"]
PII_ACTIONS: tuple[str, ...] = ("drop", "hash", "keep")

# The type vocabulary of a schema and the Arrow type each one is stored as.
TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamp_utc": pa.timestamp("us", tz="UTC"),
}
NUMERIC_TYPES = {t for t in TYPES if t.startswith(("int", "uint", "float"))}

COLUMN_KEYS = ("type", "nullable", "min", "max", "domain", "unique", "pii", "environments", "description",
               "max_missing", "drift_threshold", "restricted")
RESTRICTED_KEYS = ("bucket", "map", "as", "other")
TOP_KEYS = ("dataset", "description", "columns", "subject", "no_subject", "slices", "label", "volume", "slice_volume",
            "drift", "environments", "allow_extra_columns", "retention")
LABEL_KEYS = ("column", "positive_rate")
VOLUME_KEYS = ("max_drop", "max_growth")
SLICE_VOLUME_KEYS = ("max_drop", "min_rows")
DRIFT_KEYS = ("threshold",)
DEFAULT_ENVIRONMENTS = ("training", "serving")
_OUTPUT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Column names that identify a person wherever they appear. A dataset holding one of them (or a column tagged
# ``pii``) holds personal data, so it must declare its subject column, or say why it has none (``no_subject``).
PERSONAL_IDENTIFIERS = frozenset({"user_id", "customer_id", "shopper_id", "account_id", "subject_id", "email",
                                  "phone", "ip", "ip_address", "session_id", "device_id", "full_name"})


def personal_columns(columns: Sequence[str], pii: Mapping[str, str] = {}) -> list[str]:  # noqa: B006 - read only
    """The columns that make a dataset personal data: known identifiers and PII-tagged columns it keeps."""
    kept_pii = {c for c, action in pii.items() if action != "drop"}
    return [c for c in columns if c in PERSONAL_IDENTIFIERS or c in kept_pii]


def yarnit_type(arrow_type: pa.DataType) -> str:
    """The schema type name of an Arrow type (``string`` for dictionary-encoded strings)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return str(t)
    if pa.types.is_floating(t):
        return "float32" if t.bit_width <= 32 else "float64"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", _no)(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp_utc" if t.tz else "timestamp"
    if pa.types.is_null(t):
        return "string"
    return str(t)


def _no(_t: pa.DataType) -> bool:
    return False


def type_family(name: str) -> str:
    """Coarse family used for compatibility: int and float data may fill a float column."""
    if name.startswith(("int", "uint")):
        return "integer"
    if name.startswith("float"):
        return "float"
    if name.startswith("timestamp"):
        return "timestamp"
    return name


def compatible(declared: str, actual: str) -> bool:
    """True when data of type ``actual`` can be stored losslessly as ``declared``."""
    d, a = type_family(declared), type_family(actual)
    return d == a or (d == "float" and a == "integer")


@dataclass(frozen=True)
class ColumnRestriction:
    """A restricted column's declared compliant transform (none: raw reads only, with the role).

    ``bucket`` boundaries make half-open ranges labelled ``<18``, ``18-25`` … ``65+``;
    ``mapping`` sends each listed value to its group and any other value to ``other``.
    The output is a new string column ``output``; the raw column is never overwritten (CH2-R4).
    """

    output: str | None = None
    bucket: tuple[float, ...] | None = None
    mapping: tuple[tuple[str, str], ...] | None = None
    other: str = "other"

    @property
    def transform(self) -> str | None:
        return "bucket" if self.bucket is not None else "map" if self.mapping is not None else None

    def to_dict(self) -> dict[str, Any] | bool:
        if self.output is None:
            return True
        out: dict[str, Any] = {}
        if self.bucket is not None:
            out["bucket"] = list(self.bucket)
        if self.mapping is not None:
            out["map"] = dict(self.mapping)
            if self.other != "other":
                out["other"] = self.other
        out["as"] = self.output
        return out


@dataclass(frozen=True)
class ColumnSchema:
    """What one column must look like."""

    type: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    domain: tuple[Any, ...] | None = None
    unique: bool = False
    pii: PiiAction | None = None
    environments: tuple[str, ...] | None = None
    description: str = ""
    max_missing: float | None = None
    drift_threshold: float | None = None
    restricted: ColumnRestriction | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type]

    def present_in(self, environment: str) -> bool:
        return self.environments is None or environment in self.environments

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if not self.nullable:
            out["nullable"] = False
        for key in ("min", "max", "max_missing", "drift_threshold"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.domain is not None:
            out["domain"] = list(self.domain)
        if self.unique:
            out["unique"] = True
        if self.pii is not None:
            out["pii"] = self.pii
        if self.environments is not None:
            out["environments"] = list(self.environments)
        if self.description:
            out["description"] = self.description
        if self.restricted is not None:
            out["restricted"] = self.restricted.to_dict()
        return out


@dataclass(frozen=True)
class LabelSpec:
    column: str
    positive_rate: tuple[float, float] | None = None


@dataclass(frozen=True)
class DatasetSchema:
    """A dataset's declared columns and dataset-level expectations."""

    columns: dict[str, ColumnSchema]
    dataset: str | None = None
    description: str = ""
    subject: str | None = None
    no_subject: str | None = None  # why a dataset with personal data has no subject column
    slices: tuple[str, ...] = ()
    label: LabelSpec | None = None
    volume_max_drop: float = 0.5
    volume_max_growth: float | None = None
    slice_max_drop: float = 0.5
    slice_min_rows: int = 20
    drift_threshold: float = 0.1
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    allow_extra_columns: bool = False
    retention: str | None = None
    source: str = field(default="", compare=False)

    # -- derived -----------------------------------------------------------
    @property
    def pii_columns(self) -> dict[str, str]:
        return {name: c.pii for name, c in self.columns.items() if c.pii is not None}

    @property
    def restricted_columns(self) -> dict[str, ColumnRestriction]:
        return {name: c.restricted for name, c in self.columns.items() if c.restricted is not None}

    def arrow_schema(self, environment: str | None = None) -> pa.Schema:
        return pa.schema([pa.field(n, c.arrow_type, nullable=c.nullable) for n, c in self.columns.items()
                          if environment is None or c.present_in(environment)])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dataset:
            out["dataset"] = self.dataset
        if self.description:
            out["description"] = self.description
        if self.subject:
            out["subject"] = self.subject
        if self.no_subject:
            out["no_subject"] = self.no_subject
        if self.retention:
            out["retention"] = self.retention
        if self.slices:
            out["slices"] = list(self.slices)
        if self.label is not None:
            label: dict[str, Any] = {"column": self.label.column}
            if self.label.positive_rate is not None:
                label["positive_rate"] = list(self.label.positive_rate)
            out["label"] = label
        out["volume"] = {"max_drop": self.volume_max_drop}
        if self.volume_max_growth is not None:
            out["volume"]["max_growth"] = self.volume_max_growth
        out["slice_volume"] = {"max_drop": self.slice_max_drop, "min_rows": self.slice_min_rows}
        out["drift"] = {"threshold": self.drift_threshold}
        if tuple(self.environments) != DEFAULT_ENVIRONMENTS:
            out["environments"] = list(self.environments)
        if self.allow_extra_columns:
            out["allow_extra_columns"] = True
        out["columns"] = {name: c.to_dict() for name, c in self.columns.items()}
        return out

    def content_sha256(self) -> str:
        return sha256_json(self.to_dict())

    def to_yaml(self) -> str:
        header = "# yarnit dataset schema: edit ranges, domains, PII and environments, then ingest with --schema\n"
        return header + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)

    # -- parsing -----------------------------------------------------------
    @classmethod
    def from_dict(cls, document: Mapping[str, Any], *, path: str | None = None) -> DatasetSchema:
        """Build from a plain document (e.g. one stored in the metadata store)."""
        return cls.from_yaml(yaml.safe_dump(dict(document), sort_keys=False), path=path)

    @classmethod
    def from_file(cls, path: str | Path) -> DatasetSchema:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemaError(f"Schema file {str(p)!r} does not exist. Write one with: "
                              "yarnit data infer-schema DATASET -o schema.yaml") from None
        except UnicodeDecodeError as exc:
            raise SchemaError(f"is not UTF-8 text (byte {exc.start}); save the schema as UTF-8 YAML.",
                              path=str(p)) from None
        return cls.from_yaml(text, path=str(p))

    @classmethod
    def from_yaml(cls, text: str, *, path: str | None = None) -> DatasetSchema:
        """Parse a YAML schema; every mistake names the file, the line and what is valid."""
        return _Parser(path).parse(text)


class _Parser:
    def __init__(self, path: str | None) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str) -> SchemaError:
        line = None if node is None else node.start_mark.line + 1
        return SchemaError(message, path=self.path, line=line)

    def parse(self, text: str) -> DatasetSchema:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = None if mark is None else mark.line + 1
            problem = getattr(exc, "problem", None) or str(exc)
            raise SchemaError(f"is not valid YAML: {problem}. Check indentation and quoting.",
                              path=self.path, line=line) from None
        if root is None:
            raise SchemaError("is empty; a schema needs at least a 'columns:' mapping.", path=self.path, line=1)
        top = self.mapping(root, "the schema", TOP_KEYS)
        if "columns" not in top:
            raise self.fail(root, "has no 'columns:' mapping; declare at least one column (name: {type: ...}).")
        columns_node = top["columns"][1]
        columns = self.mapping(columns_node, "columns", None)
        if not columns:
            raise self.fail(columns_node, "'columns' is empty; declare at least one column.")
        parsed = {name: self.column(name, value) for name, (_k, value) in columns.items()}
        kwargs: dict[str, Any] = {"columns": parsed, "source": self.path or ""}
        for key in ("dataset", "description", "subject", "no_subject", "retention"):
            if key in top:
                kwargs[key] = self.string(top[key][1], key)
        if "allow_extra_columns" in top:
            kwargs["allow_extra_columns"] = self.boolean(top["allow_extra_columns"][1], "allow_extra_columns")
        if "environments" in top:
            kwargs["environments"] = tuple(self.strings(top["environments"][1], "environments"))
        envs = set(kwargs.get("environments", DEFAULT_ENVIRONMENTS))
        if "slices" in top:
            node = top["slices"][1]
            kwargs["slices"] = tuple(self.strings(node, "slices"))
            for s in kwargs["slices"]:
                self.known_column(node, s, parsed, "slices")
        if "subject" in kwargs:
            self.known_column(top["subject"][1], kwargs["subject"], parsed, "subject")
            if "no_subject" in kwargs:
                raise self.fail(top["no_subject"][0], "declares both 'subject' and 'no_subject'; keep 'subject' if "
                                                      "a column identifies the person, else 'no_subject: REASON'.")
        if "label" in top:
            kwargs["label"] = self.label(top["label"][1], parsed)
        if "volume" in top:
            vol = self.mapping(top["volume"][1], "volume", VOLUME_KEYS)
            if "max_drop" in vol:
                kwargs["volume_max_drop"] = self.fraction(vol["max_drop"][1], "volume.max_drop")
            if "max_growth" in vol:
                kwargs["volume_max_growth"] = self.positive(vol["max_growth"][1], "volume.max_growth")
        if "slice_volume" in top:
            sv = self.mapping(top["slice_volume"][1], "slice_volume", SLICE_VOLUME_KEYS)
            if "max_drop" in sv:
                kwargs["slice_max_drop"] = self.fraction(sv["max_drop"][1], "slice_volume.max_drop")
            if "min_rows" in sv:
                rows = self.positive(sv["min_rows"][1], "slice_volume.min_rows")
                if not rows.is_integer():  # int() would store 0.5 as 0, which the schema itself refuses
                    raise self.fail(sv["min_rows"][1], f"slice_volume.min_rows must be a whole number of rows, got "
                                                       f"{rows!r}.")
                kwargs["slice_min_rows"] = int(rows)
        if "drift" in top:
            dr = self.mapping(top["drift"][1], "drift", DRIFT_KEYS)
            if "threshold" in dr:
                kwargs["drift_threshold"] = self.fraction(dr["threshold"][1], "drift.threshold")
        for name, (_k, node) in columns.items():
            col = parsed[name]
            if col.environments is not None:
                unknown = [e for e in col.environments if e not in envs]
                if unknown:
                    raise self.fail(node, f"column {name!r} lists unknown environments {unknown}; "
                                          f"known environments are {sorted(envs)} (declare more under "
                                          "'environments:').")
            if col.restricted is not None and col.restricted.output is not None:
                output = col.restricted.output
                others = [n for n, c in parsed.items() if n != name and c.restricted is not None
                          and c.restricted.output == output]
                if output in parsed or others:
                    raise self.fail(node, f"column {name!r} writes its compliant transform to {output!r}, which is "
                                          f"already {'a declared column' if output in parsed else 'used by ' + others[0]}"
                                          "; pick a new name for 'as' (e.g. "
                                          f"'{name}_band').")
        return DatasetSchema(**kwargs)

    # -- node helpers ------------------------------------------------------
    def mapping(self, node: yaml.Node, what: str,
                allowed: Sequence[str] | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value), got {self.shown(node)}.")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, f"{what} has a key that is not a plain name.")
            key = str(key_node.value)
            if allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(key_node, f"unknown key {key!r} in {what}; {hint}valid keys: "
                                          f"{', '.join(allowed)}.")
            if key in out:
                raise self.fail(key_node, f"key {key!r} appears twice in {what}; keep one.")
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value, got {self.shown(node)}.")
        try:
            return yaml.safe_load(yaml.serialize(node))
        except yaml.YAMLError:  # composing keeps any tag; only the safe ones can be read
            raise self.fail(node, f"{what} has the tag {node.tag!r}, which a schema cannot hold; write a plain "
                                  "value without a '!' tag.") from None
        except ValueError:  # yaml reads an integer with int(): past 4300 digits Python refuses it
            raise self.fail(node, f"{what} is a number of {len(str(node.value))} digits, more than a schema can "
                                  "hold.") from None

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string, got {value!r}.")
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false, got {value!r}.")
        return value

    def number(self, node: yaml.Node, what: str) -> float:
        value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, f"{what} must be a number, got {value!r}.")
        try:
            return float(value)
        except OverflowError:  # an integer past the largest float
            raise self.fail(node, f"{what} is too large a number ({len(str(value))} digits); the largest a schema "
                                  "holds is about 1.8e308.") from None

    def fraction(self, node: yaml.Node, what: str) -> float:
        value = self.number(node, what)
        if not 0 <= value <= 1:
            raise self.fail(node, f"{what} must be a fraction between 0 and 1, got {value!r}.")
        return value

    def positive(self, node: yaml.Node, what: str) -> float:
        value = self.number(node, what)
        if value <= 0:
            raise self.fail(node, f"{what} must be greater than 0, got {value!r}.")
        return value

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list ([a, b] or '- a' lines), got {self.shown(node)}.")
        return list(node.value)

    def strings(self, node: yaml.Node, what: str) -> list[str]:
        return [self.string(item, f"each entry of {what}") for item in self.sequence(node, what)]

    def known_column(self, node: yaml.Node, name: str, columns: Mapping[str, ColumnSchema], what: str) -> None:
        if name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(node, f"{what} names column {name!r}, which is not declared; {hint}"
                                  f"declared columns: {', '.join(columns)}.")

    def shown(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return repr(node.value)

    # -- sections ----------------------------------------------------------
    def column(self, name: str, node: yaml.Node) -> ColumnSchema:
        what = f"column {name!r}"
        fields = self.mapping(node, what, COLUMN_KEYS)
        if "type" not in fields:
            raise self.fail(node, f"{what} has no 'type'; valid types: {', '.join(TYPES)}.")
        type_node = fields["type"][1]
        type_name = self.scalar(type_node, f"{what} type")
        if type_name not in TYPES:
            close = difflib.get_close_matches(str(type_name), list(TYPES), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(type_node, f"{what} has unknown type {type_name!r}; {hint}valid types: "
                                       f"{', '.join(TYPES)}.")
        kwargs: dict[str, Any] = {"type": type_name}
        if "nullable" in fields:
            kwargs["nullable"] = self.boolean(fields["nullable"][1], f"{what} nullable")
        if "unique" in fields:
            kwargs["unique"] = self.boolean(fields["unique"][1], f"{what} unique")
        for key in ("min", "max"):
            if key in fields:
                if type_name not in NUMERIC_TYPES:
                    raise self.fail(fields[key][0], f"{what} has '{key}' but type {type_name!r} is not numeric; "
                                                    "use 'domain' for allowed values of other types.")
                kwargs[key] = self.number(fields[key][1], f"{what} {key}")
        if kwargs.get("min") is not None and kwargs.get("max") is not None and kwargs["min"] > kwargs["max"]:
            raise self.fail(fields["min"][0], f"{what} has min {kwargs['min']} > max {kwargs['max']}; swap them.")
        if "domain" in fields:
            items = self.sequence(fields["domain"][1], f"{what} domain")
            if not items:
                raise self.fail(fields["domain"][1], f"{what} has an empty domain; list the allowed values.")
            kwargs["domain"] = tuple(self.scalar(i, f"each value of {what} domain") for i in items)
        if "pii" in fields:
            action = self.scalar(fields["pii"][1], f"{what} pii")
            if action not in PII_ACTIONS:
                close = difflib.get_close_matches(str(action), PII_ACTIONS, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(fields["pii"][1], f"{what} has pii {action!r}; {hint}valid: drop (remove the "
                                                  "column), hash (keyed HMAC), keep (under access control).")
            kwargs["pii"] = action
        if "environments" in fields:
            kwargs["environments"] = tuple(self.strings(fields["environments"][1], f"{what} environments"))
        if "description" in fields:
            kwargs["description"] = str(self.scalar(fields["description"][1], f"{what} description"))
        if "max_missing" in fields:
            kwargs["max_missing"] = self.fraction(fields["max_missing"][1], f"{what} max_missing")
        if "drift_threshold" in fields:
            kwargs["drift_threshold"] = self.fraction(fields["drift_threshold"][1], f"{what} drift_threshold")
        if "restricted" in fields:
            kwargs["restricted"] = self.restriction(fields["restricted"][1], what, type_name)
        if kwargs.get("pii") == "hash" and type_name != "string":
            raise self.fail(fields["pii"][1], f"{what} has pii: hash, which stores a hex string; declare "
                                              "'type: string' for it.")
        return ColumnSchema(**kwargs)

    def restriction(self, node: yaml.Node, what: str, type_name: str) -> ColumnRestriction | None:
        if isinstance(node, yaml.ScalarNode):
            if self.boolean(node, f"{what} restricted"):
                return ColumnRestriction()
            return None
        fields = self.mapping(node, f"{what} restricted", RESTRICTED_KEYS)
        if ("bucket" in fields) == ("map" in fields):
            raise self.fail(node, f"{what} restricted needs exactly one compliant transform: 'bucket: [boundaries]' "
                                  "or 'map: {value: group}', plus 'as: NEW_COLUMN' (or 'restricted: true' for raw "
                                  "reads only).")
        if "as" not in fields:
            raise self.fail(node, f"{what} restricted needs 'as: NEW_COLUMN', the column its compliant transform "
                                  "is written to (the raw column is never overwritten).")
        output = self.string(fields["as"][1], f"{what} restricted.as")
        if not _OUTPUT.match(output):
            raise self.fail(fields["as"][1], f"{what} restricted.as {output!r} is not a column name; use letters, "
                                             "digits and '_' (e.g. 'age_band').")
        if "bucket" in fields:
            if type_name not in NUMERIC_TYPES:
                raise self.fail(fields["bucket"][0], f"{what} has type {type_name!r}; 'bucket' needs a numeric "
                                                     "column (use 'map' for other types).")
            items = self.sequence(fields["bucket"][1], f"{what} restricted.bucket")
            bounds = tuple(self.number(i, f"each boundary of {what} restricted.bucket") for i in items)
            if not bounds or any(nxt <= prev for prev, nxt in zip(bounds, bounds[1:], strict=False)):
                raise self.fail(fields["bucket"][1], f"{what} restricted.bucket must be increasing boundaries, "
                                                     f"e.g. [18, 25, 35, 50, 65]; got {list(bounds)}.")
            return ColumnRestriction(output=output, bucket=bounds)
        groups = self.mapping(fields["map"][1], f"{what} restricted.map", None)
        if not groups:
            raise self.fail(fields["map"][1], f"{what} restricted.map is empty; list value: group pairs.")
        mapping = tuple((key, str(self.scalar(value, f"each group of {what} restricted.map")))
                        for key, (_k, value) in groups.items())
        other = self.string(fields["other"][1], f"{what} restricted.other") if "other" in fields else "other"
        return ColumnRestriction(output=output, mapping=mapping, other=other)

    def label(self, node: yaml.Node, columns: Mapping[str, ColumnSchema]) -> LabelSpec:
        fields = self.mapping(node, "label", LABEL_KEYS)
        if "column" not in fields:
            raise self.fail(node, "label needs 'column: NAME'.")
        column = self.string(fields["column"][1], "label.column")
        self.known_column(fields["column"][1], column, columns, "label.column")
        rate = None
        if "positive_rate" in fields:
            items = self.sequence(fields["positive_rate"][1], "label.positive_rate")
            if len(items) != 2:
                raise self.fail(fields["positive_rate"][1], "label.positive_rate must be [low, high], e.g. "
                                                            "[0.005, 0.2].")
            low, high = (self.fraction(i, "label.positive_rate") for i in items)
            if low > high:
                raise self.fail(fields["positive_rate"][1], f"label.positive_rate low {low} > high {high}.")
            rate = (low, high)
        return LabelSpec(column=column, positive_rate=rate)


def infer_schema(table: pa.Table, statistics: Any | None = None, *, name: str | None = None,
                 max_domain: int = 50) -> DatasetSchema:
    """A starting schema from data: types and nullability, plus ranges and domains from statistics.

    ``statistics`` (a :class:`~yarnit.data.statistics.DatasetStatistics`) adds
    observed min/max for numbers and the value list of low-cardinality strings;
    a person then widens them to what is *valid*, not just what was seen.
    """
    columns: dict[str, ColumnSchema] = {}
    for f in table.schema:
        col = table.column(f.name)
        kwargs: dict[str, Any] = {"type": yarnit_type(f.type), "nullable": col.null_count > 0}
        stats = None if statistics is None else statistics.columns.get(f.name)
        if stats is not None:
            if kwargs["type"] in NUMERIC_TYPES and stats.min is not None:
                kwargs["min"], kwargs["max"] = float(stats.min), float(stats.max)
            if kwargs["type"] == "string" and stats.value_counts is not None \
                    and 0 < len(stats.value_counts) <= max_domain and stats.distinct < stats.count:
                kwargs["domain"] = tuple(sorted(stats.value_counts))
            if stats.count > 1 and stats.distinct == stats.count and kwargs["type"] in ("string", "int64"):
                kwargs["unique"] = True
        columns[f.name] = ColumnSchema(**kwargs)
    return DatasetSchema(columns=columns, dataset=name)


def with_columns(schema: DatasetSchema, **columns: ColumnSchema) -> DatasetSchema:
    """A copy of ``schema`` with some columns replaced (handy in tests and recipes)."""
    return replace(schema, columns={**schema.columns, **columns})


__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "PERSONAL_IDENTIFIERS",
    "PII_ACTIONS",
    "TYPES",
    "ColumnRestriction",
    "ColumnSchema",
    "DatasetSchema",
    "LabelSpec",
    "compatible",
    "infer_schema",
    "personal_columns",
    "type_family",
    "with_columns",
    "yarnit_type",
]
