"""A shopping cart with quantities, percentage and buy-X-get-Y promotions, and tax, in cents."""


class Cart:
    def __init__(self, prices):
        self.prices = dict(prices)  # sku -> unit price in cents
        self.items = {}  # sku -> quantity
        self.percent_off = {}  # sku -> percent
        self.bogo = {}  # sku -> (buy, free)

    def add(self, sku, qty=1):
        if sku not in self.prices:
            raise KeyError(f"unknown sku {sku!r}")
        if qty <= 0:
            raise ValueError("quantity must be positive")
        self.items[sku] = self.items.get(sku, 0) + qty

    def remove(self, sku, qty=None):
        """Remove some or all units of a sku."""
        if sku not in self.items:
            raise KeyError(sku)
        if qty is None or qty >= self.items[sku]:
            del self.items[sku]
        else:
            self.items[sku] -= qty

    def count(self):
        return sum(self.items.values())

    def set_percent_off(self, sku, percent):
        if not 0 < percent <= 100:
            raise ValueError("percent must be in (0, 100]")
        self.percent_off[sku] = percent

    def set_buy_x_get_y(self, sku, buy, free):
        self.bogo[sku] = (buy, free)

    def line_total(self, sku):
        qty = self.items.get(sku, 0)
        price = self.prices[sku]
        if sku in self.bogo:
            buy, free = self.bogo[sku]
            groups = qty // (buy + free)
            paid = qty - groups * free
        else:
            paid = qty
        total = paid * price
        if sku in self.percent_off:
            total -= total * self.percent_off[sku] // 100
        return total

    def subtotal(self):
        return sum(self.line_total(sku) for sku in self.items)

    def total(self, tax_percent=0):
        """Subtotal plus tax, tax rounded half up to the cent."""
        sub = self.subtotal()
        tax = (sub * tax_percent + 50) // 100
        return sub + tax


def format_cents(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100}.{cents % 100:02d}"
