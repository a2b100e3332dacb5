"""The QKD protocols' codecs: ETSI GS QKD 004 (:mod:`gmpls.qkd.etsi004`), the proxies'
synchronisation channel (:mod:`gmpls.qkd.sync`) and the IDQ3P device protocol
(:mod:`gmpls.qkd.idq3p`). Pure, like the rest of :mod:`gmpls`."""
