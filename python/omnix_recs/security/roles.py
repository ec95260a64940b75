"""Who may call what: the one table from RPC full name to the roles allowed to call it.

Roles (the JWT `role` claim):
- `shopper`: one customer, the token's `sub`. A shopper acts only on their own customer: on an
  RPC whose request has a `customer_id`, that id must be the token's subject. Catalog reads
  and the non-personal lists (similar, bought-together, trending, seasonal) are open to
  shoppers with `customer_id` left empty or set to their own; everything else that has no
  customer (bulk imports, batch analysis, models, reports) is not for shoppers.
- `service`: a trusted backend (checkout, the app's backend); acts on any customer.
- `analyst`: reads aggregates and insights, writes nothing about customers.
- `admin`: everything, and the only role for model lifecycle and other operator actions.

Health and reflection are open (`OPEN_SERVICES`): load balancers probe without tokens, and the
schema is no secret. Adding an RPC to a proto means adding one line below; until then, a test
(tests/security/test_roles.py) fails and, with auth on, the RPC answers PERMISSION_DENIED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SHOPPER = "shopper"
SERVICE = "service"
ANALYST = "analyst"
ADMIN = "admin"
ROLES = frozenset({SHOPPER, SERVICE, ANALYST, ADMIN})

OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


class ShopperScope(Enum):
    NONE = "none"  # shoppers may not call it
    OWN = "own"  # the request's customer_id must be the shopper's own
    OWN_OR_EMPTY = "own_or_empty"  # customer_id may be empty (non-personal answer) or the shopper's own


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[str]  # roles other than shopper allowed to call
    shopper: ShopperScope
    audited: bool = False  # a privacy or admin action: written to the audit log

    def allows(self, role: str) -> bool:
        return role in self.roles or (role == SHOPPER and self.shopper is not ShopperScope.NONE)

    def allowed_roles(self) -> list[str]:
        return sorted(self.roles | ({SHOPPER} if self.shopper is not ShopperScope.NONE else set()))


def _rule(*roles: str, shopper: ShopperScope = ShopperScope.NONE, audited: bool = False) -> Rule:
    return Rule(frozenset({ADMIN, *roles}), shopper, audited)


_OWN = ShopperScope.OWN
_OWN_OR_EMPTY = ShopperScope.OWN_OR_EMPTY
_ANYONE = (SERVICE, ANALYST)  # with admin always, and shoppers per scope

_CUSTOMER = "omnix.v1.CustomerService"
_CATALOG = "omnix.v1.CatalogService"
_RECOMMENDATION = "omnix.v1.RecommendationService"
_INSIGHTS = "omnix.v1.InsightsService"
_ADMIN = "omnix.v1.AdminService"
_MARKETING = "omnix.v1.MarketingService"
_INVENTORY = "omnix.v1.InventoryService"

# RPC full name (as gRPC writes it: "/package.Service/Method") -> who may call it.
RULES: dict[str, Rule] = {
    f"/{_CUSTOMER}/RegisterCustomer": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/GetCustomerProfile": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/UpdatePreferences": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/SetDietaryRestrictions": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/UpdateConsent": _rule(SERVICE, shopper=_OWN, audited=True),
    f"/{_CUSTOMER}/UpdateDemographics": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/ListPurchases": _rule(SERVICE, shopper=_OWN),
    # Purchases come from the tills and the online shop (services), not from the shopper's app.
    f"/{_CUSTOMER}/RecordPurchase": _rule(SERVICE),
    f"/{_CUSTOMER}/RecordPurchases": _rule(SERVICE),
    f"/{_CUSTOMER}/RecordInteraction": _rule(SERVICE, shopper=_OWN),
    f"/{_CUSTOMER}/ImportPurchases": _rule(SERVICE),
    # GDPR Art. 15/17/20: the shopper themselves, or an operator; never another service.
    f"/{_CUSTOMER}/ExportCustomerData": _rule(shopper=_OWN, audited=True),
    f"/{_CUSTOMER}/DeleteCustomer": _rule(shopper=_OWN, audited=True),
    f"/{_CATALOG}/UpsertProducts": _rule(SERVICE),
    f"/{_CATALOG}/GetProduct": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_CATALOG}/ListProducts": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_RECOMMENDATION}/GetRecommendations": _rule(SERVICE, shopper=_OWN),
    f"/{_RECOMMENDATION}/GetPersonalizedRecommendations": _rule(SERVICE, shopper=_OWN),
    f"/{_RECOMMENDATION}/GetSimilarProducts": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_RECOMMENDATION}/GetFrequentlyBoughtTogether": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_RECOMMENDATION}/GetTrending": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_RECOMMENDATION}/GetSeasonal": _rule(*_ANYONE, shopper=_OWN_OR_EMPTY),
    f"/{_RECOMMENDATION}/RecordFeedback": _rule(SERVICE, shopper=_OWN),
    f"/{_INSIGHTS}/AnalyzeCustomer": _rule(SERVICE, ANALYST, shopper=_OWN),
    f"/{_INSIGHTS}/GetConsumptionPredictions": _rule(SERVICE, ANALYST, shopper=_OWN),
    f"/{_INSIGHTS}/GetInsights": _rule(SERVICE, ANALYST, shopper=_OWN),
    f"/{_INSIGHTS}/BatchAnalyze": _rule(ANALYST, audited=True),
    f"/{_INSIGHTS}/GetPredictionAccuracy": _rule(SERVICE, ANALYST),
    f"/{_ADMIN}/RetrainModel": _rule(audited=True),
    f"/{_ADMIN}/ListModels": _rule(ANALYST),
    f"/{_ADMIN}/ActivateModel": _rule(audited=True),
    f"/{_ADMIN}/RollbackModel": _rule(audited=True),
    f"/{_ADMIN}/GetRecommendationPerformance": _rule(ANALYST),
    f"/{_ADMIN}/GetRecommendationRoi": _rule(ANALYST),
    f"/{_ADMIN}/GetRecommendationImpact": _rule(ANALYST),
    f"/{_ADMIN}/CreateExperiment": _rule(audited=True),
    f"/{_ADMIN}/GetExperiment": _rule(ANALYST),
    f"/{_ADMIN}/ListExperiments": _rule(ANALYST),
    f"/{_ADMIN}/StopExperiment": _rule(audited=True),
    f"/{_ADMIN}/GetExperimentResults": _rule(ANALYST),
    f"/{_MARKETING}/CreateCampaign": _rule(audited=True),
    # Stored campaigns carry a preview of their messages (customers by name): as the messages.
    f"/{_MARKETING}/ListCampaigns": _rule(SERVICE),
    f"/{_MARKETING}/GetCampaign": _rule(SERVICE),
    # Messages name customers and what we would send them: personal data.
    f"/{_MARKETING}/ListCampaignMessages": _rule(SERVICE),
    # Opens, clicks and unsubscribes, from the shopper's app or the mail service; an
    # unsubscribe withdraws consent, hence audited.
    f"/{_MARKETING}/RecordCampaignEvent": _rule(SERVICE, shopper=_OWN, audited=True),
    f"/{_MARKETING}/GetCampaignPerformance": _rule(ANALYST),
    # Store operations (ordering stock), not about any one customer.
    f"/{_INVENTORY}/GetInventoryForecast": _rule(SERVICE, ANALYST),
    f"/{_INVENTORY}/GetReorderRecommendations": _rule(SERVICE, ANALYST),
}


def is_open(method: str) -> bool:
    """Health checks and reflection: callable without a token."""
    service = method[1:].split("/", 1)[0]
    return service in OPEN_SERVICES


def rule_for(method: str) -> Rule | None:
    """The rule for an RPC; None when the RPC is missing from the table (nobody but open
    services may then call it)."""
    return RULES.get(method)
