"""Tokenize and evaluate arithmetic expressions with the shunting-yard algorithm."""

import re

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2, "^": 3}
RIGHT_ASSOC = {"^"}
_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*)|(.))")


def tokenize(text):
    """Numbers become floats; unary minus becomes the token 'neg'."""
    tokens = []
    for number, other in _TOKEN.findall(text):
        if number:
            tokens.append(float(number))
        elif other.strip():
            if other == "-" and (not tokens or tokens[-1] in PRECEDENCE or tokens[-1] in ("(", "neg")):
                tokens.append("neg")
            elif other in PRECEDENCE or other in "()":
                tokens.append(other)
            else:
                raise ValueError(f"unexpected character {other!r}")
    return tokens


def to_rpn(tokens):
    out = []
    stack = []
    for tok in tokens:
        if isinstance(tok, float):
            out.append(tok)
        elif tok == "neg":
            stack.append(tok)
        elif tok in PRECEDENCE:
            while stack and stack[-1] != "(":
                top = stack[-1]
                top_prec = 4 if top == "neg" else PRECEDENCE[top]
                if top_prec > PRECEDENCE[tok] or (top_prec == PRECEDENCE[tok] and tok not in RIGHT_ASSOC):
                    out.append(stack.pop())
                else:
                    break
            stack.append(tok)
        elif tok == "(":
            stack.append(tok)
        else:
            while stack and stack[-1] != "(":
                out.append(stack.pop())
            if not stack:
                raise ValueError("unbalanced parenthesis")
            stack.pop()
    while stack:
        top = stack.pop()
        if top == "(":
            raise ValueError("unbalanced parenthesis")
        out.append(top)
    return out


def eval_rpn(rpn):
    stack = []
    for tok in rpn:
        if isinstance(tok, float):
            stack.append(tok)
        elif tok == "neg":
            stack.append(-stack.pop())
        else:
            if len(stack) < 2:
                raise ValueError("missing operand")
            b = stack.pop()
            a = stack.pop()
            if tok == "+":
                stack.append(a + b)
            elif tok == "-":
                stack.append(a - b)
            elif tok == "*":
                stack.append(a * b)
            elif tok == "/":
                stack.append(a / b)
            elif tok == "%":
                stack.append(a % b)
            else:
                stack.append(a ** b)
    if len(stack) != 1:
        raise ValueError("malformed expression")
    return stack[0]


def evaluate(text):
    return eval_rpn(to_rpn(tokenize(text)))
