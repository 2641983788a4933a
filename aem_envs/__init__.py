"""aem_envs: text agent environments with one step API, one registry and a conformance checker."""

from aem_envs.chat import ChatView, chat_messages
from aem_envs.checker import CheckReport, check_env
from aem_envs.core import (
    INFO_KEYS,
    InfraError,
    InvalidAction,
    InvalidActionPolicy,
    Outcome,
    TaskIds,
    TextEnv,
    TextSpace,
)
from aem_envs.parsing import extract_tag, format_action, last_line, parse_action
from aem_envs.registration import UnknownEnvError, make, register, registered_ids, spec
from aem_envs.vector import TextVecEnv, make_vec

__all__ = [
    "INFO_KEYS", "ChatView", "CheckReport", "InfraError", "InvalidAction", "InvalidActionPolicy",
    "Outcome", "TaskIds", "TextEnv", "TextSpace", "TextVecEnv", "UnknownEnvError", "chat_messages",
    "check_env", "extract_tag", "format_action", "last_line", "make", "make_vec", "parse_action",
    "register", "registered_ids", "spec",
]
__version__ = "0.1.0"
