"""The one compiled module: the scanner of KuCoin's ticker:all and depth frames. Everything else is in
pyproject.toml.

It is optional: where it cannot be built (no C compiler), the install goes on and the codec decodes every
frame with msgspec; ``cryptoarb.venues.kucoin.codec.FAST_SCAN`` and the start-up log say which one runs.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("cryptoarb.venues.kucoin._framescan", ["src/cryptoarb/venues/kucoin/_framescan.c"],
                             optional=True)])
