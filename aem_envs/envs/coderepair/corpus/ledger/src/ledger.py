"""A double-entry style account ledger with an overdraft limit and history queries."""


class InsufficientFunds(Exception):
    pass


class Account:
    def __init__(self, owner, overdraft=0):
        if overdraft < 0:
            raise ValueError("overdraft limit cannot be negative")
        self.owner = owner
        self.overdraft = overdraft
        self.entries = []  # (kind, amount, balance_after)

    @property
    def balance(self):
        return self.entries[-1][2] if self.entries else 0

    def available(self):
        return self.balance + self.overdraft

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.entries.append(("deposit", amount, self.balance + amount))
        return self.balance

    def withdraw(self, amount):
        if amount <= 0:
            raise ValueError("withdrawal must be positive")
        if amount > self.available():
            raise InsufficientFunds(f"{self.owner} can withdraw at most {self.available()}")
        self.entries.append(("withdraw", amount, self.balance - amount))
        return self.balance

    def history(self, kind=None):
        return [e for e in self.entries if kind is None or e[0] == kind]

    def total(self, kind):
        return sum(amount for k, amount, _ in self.entries if k == kind)

    def lowest_balance(self):
        return min((b for _, _, b in self.entries), default=0)


def transfer(src, dst, amount):
    """Move money atomically: nothing changes if the withdrawal fails."""
    src.withdraw(amount)
    dst.deposit(amount)
    return src.balance, dst.balance


def apply_interest(account, rate_percent):
    """Credit interest on a positive balance, rounded down to whole units."""
    if account.balance <= 0:
        return 0
    interest = account.balance * rate_percent // 100
    if interest > 0:
        account.deposit(interest)
    return interest
