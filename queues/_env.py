"""The settings base every runtime's model is built on (pydantic-settings), with one set of rules.

A field reads `<env_prefix><FIELD>`, or the variables its `validation_alias` names, in order; a
variable set to the empty string is unset (the default holds); booleans are 1, true, yes, on or
0, false, no, off, in any case; lists are comma-separated; a value that does not fit raises
SettingsError, naming the variable and what it expects. Built in code, a model reads no
environment at all: `from_env(environ)` is the one place that reads one, the mapping it is given.
"""

import os
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import AliasChoices, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting from the environment is missing or malformed; the message names it."""


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise PydanticCustomError("flag", "true or false")
    return value


def _names(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A boolean setting: one of TRUE_WORDS or FALSE_WORDS, in any case; anything else is refused.
Flag = Annotated[bool, BeforeValidator(_flag)]
# A list setting: comma-separated, spaces around each item and empty items dropped (`SPLIT` on a
# tuple of another type: `Annotated[tuple[Literal["a", "b"], ...], SPLIT]`).
SPLIT = BeforeValidator(_names)
Names = Annotated[tuple[str, ...], SPLIT]


class EnvSettings(BaseSettings):
    """The base of every settings model (see the module's docstring for the rules)."""

    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, case_sensitive=True, extra="forbid")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _refusal(type(self), exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """What the code passes, only: a model reads an environment in `from_env` alone."""
        return (init_settings,)

    @classmethod
    def sections(cls) -> dict[str, type["EnvSettings"]]:
        """Fields that hold another settings model: built from the same environment."""
        found = {}
        for name, field in cls.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, EnvSettings):
                found[name] = field.annotation
        return found

    @classmethod
    def variables(cls) -> dict[str, tuple[str, ...]]:
        """Field -> the variables it reads, the first one set wins (sections aside)."""
        prefix = cls.model_config.get("env_prefix", "")
        sections = cls.sections()
        return {
            name: _variables(name, field, prefix) for name, field in cls.model_fields.items() if name not in sections
        }

    @classmethod
    def env_values(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """What `environ` sets for this model: each section built from it, the variables as given."""
        values: dict[str, Any] = {name: section.from_env(environ) for name, section in cls.sections().items()}
        return values | EnvironSource(cls, environ)()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """The settings `environ` gives: the runtimes' entry points pass the process's environment."""
        return cls(**cls.env_values(environ))


class EnvironSource(PydanticBaseSettingsSource):
    """A pydantic-settings source over a mapping `from_env` is given (never os.environ itself)."""

    def __init__(self, settings_cls: type[EnvSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ
        self.names = settings_cls.variables()

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        for name in self.names.get(field_name, ()):
            raw = self.environ.get(name)
            if raw is not None and raw.strip():  # set but empty: unset
                return raw, name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name in self.names:
            raw, _, _ = self.get_field_value(self.settings_cls.model_fields[name], name)
            if raw is not None:
                values[name] = raw
        return values


def _variables(name: str, field: FieldInfo, prefix: str) -> tuple[str, ...]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(choice for choice in alias.choices if isinstance(choice, str))
    return (f"{prefix}{name.upper()}",)


def _refusal(model: type[EnvSettings], exc: ValidationError) -> SettingsError:
    """One SettingsError for everything pydantic refused, each part naming its variable (once)."""
    messages: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field = error["loc"][0] if error["loc"] else None
        names = model.variables().get(field, ()) if isinstance(field, str) else ()
        where = names[0] if names else ".".join(map(str, error["loc"])) or model.__name__
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError):  # a check that wrote its own message
            messages.setdefault(str(cause), str(cause))
        elif error["type"] == "extra_forbidden":
            messages.setdefault(where, f"{model.__name__} has no setting {field!r}.")
        else:
            secret = isinstance(field, str) and field in model.model_fields and not model.model_fields[field].repr
            got = "" if secret else f", got {error['input']!r}"
            hint = f" (write {', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)})" if error["type"] == "flag" else ""
            messages.setdefault(where, f"{where} must be {_expected(error)}{got}{hint}")
    return SettingsError("; ".join(messages.values()))


def _expected(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    match error["type"]:
        case "int_parsing" | "int_type" | "int_from_float":
            return "an integer"
        case "float_parsing" | "float_type" | "finite_number":
            return "a number"
        case "flag" | "bool_parsing" | "bool_type":
            return "true or false"
        case "greater_than":
            return f"more than {ctx['gt']}"
        case "greater_than_equal":
            return f"{ctx['ge']} or more"
        case "less_than":
            return f"less than {ctx['lt']}"
        case "less_than_equal":
            return f"at most {ctx['le']}"
        case "literal_error":
            return str(ctx["expected"])
        case "too_short":
            return "a comma-separated list of at least one"
        case _:
            return f"valid ({error['msg']})"
