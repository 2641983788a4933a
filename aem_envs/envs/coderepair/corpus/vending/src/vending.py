"""A vending machine as an explicit state machine."""

IDLE = "idle"
HAS_MONEY = "has_money"
OUT_OF_SERVICE = "out_of_service"
COINS = (5, 10, 25, 100)


class VendingMachine:
    def __init__(self, prices, stock):
        self.prices = dict(prices)
        self.stock = dict(stock)
        self.state = IDLE
        self.balance = 0
        self.sales = 0

    def insert(self, coin):
        if self.state == OUT_OF_SERVICE:
            raise RuntimeError("machine is out of service")
        if coin not in COINS:
            raise ValueError(f"coin {coin} not accepted")
        self.balance += coin
        self.state = HAS_MONEY
        return self.balance

    def select(self, item):
        """Vend ``item``; returns (item, change) and goes back to idle."""
        if self.state != HAS_MONEY:
            raise RuntimeError("insert money first")
        if item not in self.prices:
            raise KeyError(item)
        if self.stock.get(item, 0) <= 0:
            raise RuntimeError(f"{item} is sold out")
        price = self.prices[item]
        if self.balance < price:
            raise RuntimeError(f"insert {price - self.balance} more")
        change = self.balance - price
        self.stock[item] -= 1
        self.sales += price
        self.balance = 0
        self.state = IDLE
        if all(count == 0 for count in self.stock.values()):
            self.state = OUT_OF_SERVICE
        return item, change

    def cancel(self):
        """Return the balance."""
        refund = self.balance
        self.balance = 0
        if self.state == HAS_MONEY:
            self.state = IDLE
        return refund

    def restock(self, item, count):
        if count <= 0:
            raise ValueError("restock count must be positive")
        self.stock[item] = self.stock.get(item, 0) + count
        if self.state == OUT_OF_SERVICE:
            self.state = IDLE


def make_change(amount, coins=COINS):
    """Fewest coins (greedy, valid for this coin set), largest first."""
    if amount < 0:
        raise ValueError("negative amount")
    out = []
    for coin in sorted(coins, reverse=True):
        while amount >= coin:
            out.append(coin)
            amount -= coin
    if amount:
        raise ValueError("amount cannot be paid with these coins")
    return out
