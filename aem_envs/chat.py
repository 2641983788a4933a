"""The chat view: what a model sees at each turn.

A prompt is the system prompt, the task instruction, the last ``window`` turns of
(observation, response) and the current observation, as ``{"role", "content"}`` messages.
Bounding the window keeps prompts short (prefill dominates CPU rollout time) and makes the
prompt of turn t independent of how long the episode has run. ``reset`` starts a new episode
and forgets everything: history never crosses an episode boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChatView:
    system_prompt: str = ""
    window: int = 2
    instruction: str = ""
    observation: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)  # (observation, response)

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError(f"window={self.window} must be >= 0")

    def reset(self, instruction: str, observation: str, system_prompt: str | None = None) -> None:
        """Start a new episode: drop all history."""
        if system_prompt is not None:
            self.system_prompt = system_prompt
        self.instruction, self.observation = instruction, observation
        self.history = []

    def record(self, response: str, next_observation: str) -> None:
        """The agent answered ``response`` to the current observation; the env replied."""
        self.history.append((self.observation, response))
        self.observation = next_observation

    def messages(self) -> list[dict[str, str]]:
        return chat_messages(
            self.system_prompt, self.instruction, self.history, self.observation, self.window
        )


def chat_messages(
    system_prompt: str,
    instruction: str,
    history: list[tuple[str, str]],
    observation: str,
    window: int = 2,
) -> list[dict[str, str]]:
    """Messages for (system, instruction, last ``window`` turns of history, observation)."""
    kept = history[len(history) - window :] if window > 0 else []
    if window == 0:
        kept = []
    omitted = len(history) - len(kept)
    msgs: list[dict[str, str]] = []
    if system_prompt:
        msgs.append({"role": "system", "content": system_prompt})
    head = f"Task: {instruction}" if instruction else ""
    if omitted:
        head += f"\n[{omitted} earlier turn{'s' if omitted != 1 else ''} omitted]"
    turns = kept + [(observation, None)]
    for i, (obs, resp) in enumerate(turns):
        content = f"{head}\n\n{obs}".strip() if i == 0 else obs
        msgs.append({"role": "user", "content": content})
        if resp is not None:
            msgs.append({"role": "assistant", "content": resp})
    return msgs
