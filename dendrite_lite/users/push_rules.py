"""A user's push rules (push.md §Push Rules: API), stored as the m.push_rules account data.

The stored value is the user's document of changes (push/ruleset.py); the pure functions there
do every edit and render the full ruleset. Each edit is one read-modify-write transaction via
AccountDataService.update, so two concurrent edits cannot lose each other, and every change
reaches the user's other devices as the m.push_rules account data event in /sync.
"""

from __future__ import annotations

from typing import Any

from dendrite_lite.push import ruleset
from dendrite_lite.storage.account_data import GLOBAL
from dendrite_lite.users.account_data import PUSH_RULES, AccountDataService

__all__ = ["PushRulesService", "RULE_ATTRIBUTES"]

# The attributes of a rule that have their own endpoint (.../{ruleId}/{attr}).
RULE_ATTRIBUTES = ("enabled", "actions")


class PushRulesService:
    def __init__(self, account_data: AccountDataService) -> None:
        self._account_data = account_data

    async def user_rules(self, user_id: str) -> dict[str, Any]:
        """The user's stored document of changes (for push.evaluator.compiled_for_user)."""
        return await self._account_data.read(user_id, GLOBAL, PUSH_RULES) or ruleset.empty_user_rules()

    async def all_rules(self, user_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/pushrules/ body: {"global": {kind: [rule, ...]}}."""
        return ruleset.full_ruleset(user_id, await self.user_rules(user_id))

    async def kind_rules(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        """GET /_matrix/client/v3/pushrules/global/{kind}/: that kind's rules, in order."""
        ruleset.check_kind(kind)
        rules: list[dict[str, Any]] = (await self.all_rules(user_id))["global"][kind]
        return rules

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        return ruleset.get_rule(user_id, await self.user_rules(user_id), kind, rule_id)

    async def get_attribute(self, user_id: str, kind: str, rule_id: str, attr: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}"""
        rule = await self.get_rule(user_id, kind, rule_id)
        return {attr: rule[attr]}

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: Any,
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        await self._edit(user_id, lambda doc: ruleset.add_rule(doc, kind, rule_id, body, before, after))

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        await self._edit(user_id, lambda doc: ruleset.delete_rule(doc, kind, rule_id))

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: Any) -> None:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
        await self._edit(user_id, lambda doc: ruleset.set_enabled(doc, kind, rule_id, enabled))

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        await self._edit(user_id, lambda doc: ruleset.set_actions(doc, kind, rule_id, actions))

    async def _edit(self, user_id: str, edit: Any) -> None:
        await self._account_data.update(
            user_id, GLOBAL, PUSH_RULES, lambda old: edit(old or ruleset.empty_user_rules())
        )
