-- qkdnet.lua: Wireshark dissectors for the formats the qkdnet testbed invented
-- (docs/wireshark.md).
--
--   qkdnet          post-dissector on the built-in RSVP, PCEP and OSPF trees: the QE
--                   subobject (type 103) in RSVP EXPLICIT_ROUTE/RECORD_ROUTE and PCEP
--                   ERO/RRO/IRO, the QE METRIC types 251-255 of PCEP, the QE capability
--                   bit of the OSPF Router Information LSA
--   qkdnet.etsi004  ETSI GS QKD 004 on UDP 5424 (node <-> key proxy)
--   qkdnet.sync     the key proxies' sync channel on UDP 5626 (the HMAC shown, not checked)
--   qkdnet.idq3p    the IDQ3P emulator protocol on UDP 5323 (proxy <-> QKD device)
--   qkdnet.dataplane the encrypted data plane of a QE service (EtherType 0x88B5)
--
-- Load it once: `tshark -X lua_script:wireshark/qkdnet.lua ...`, or copy it into the
-- personal Lua plugin folder (`qkdnet wireshark install`). Written for Wireshark 4.x.
--
-- The block between BEGIN GENERATED and END GENERATED is written by
-- `python -m compose.wireshark` from the project's codecs (gmpls/qe.py, gmpls/ero.py,
-- gmpls/qkd/): code points, registries, and every message type's fields in wire order.
-- Do not edit it by hand; the code below reads nothing else about the formats' values.

local loaded_ok, loaded = pcall(Dissector.get, "qkdnet.etsi004")
if loaded_ok and loaded then
    return -- loaded twice (installed and given with -X lua_script): keep the first
end

-- BEGIN GENERATED
local CP = {
  ri_qe_bit = 6,
  ri_te_bit = 3,
  metric_key_length = 255,
  metric_enc_layer = 254,
  metric_algorithm = 253,
  metric_refresh_value = 252,
  metric_refresh_type = 251,
  ero_subobject = 103,
  te_available_labels = 32768,
  te_qkd_link = 32769,
  pcep_relay_tlv = 65520,
  metric_p_flag = true,
}
local ENC_LAYER = { [1] = "OPTICAL", [2] = "ETHERNET", [3] = "IP" }
local ALGORITHM = {
  [1] = "ONE_TIME_PAD",
  [3] = "TDES_CBC",
  [10] = "AES_256_GCM",
  [11] = "AES_128_GCM",
  [12] = "CHACHA20_POLY1305",
}
local REFRESH_TYPE = { [0] = "NONE", [1] = "TIME_MS", [2] = "VOLUME_MIB" }
local METRIC_TYPES = {
  [255] = { name = "QE key length" },
  [254] = { name = "QE encryption layer", enum = "ENC_LAYER" },
  [253] = { name = "QE encryption algorithm", enum = "ALGORITHM" },
  [252] = { name = "QE key refresh value" },
  [251] = { name = "QE key refresh type", enum = "REFRESH_TYPE" },
}
local QE_SUBOBJECT = {
  length = 76,
  fields = {
    { "reserved", "u16" },
    { "key_handle", "b64" },
    { "enc_layer", "u8" },
    { "algorithm", "u8" },
    { "key_length", "u16" },
    { "refresh_type", "u8" },
    { "reserved2", "x1" },
    { "refresh_value", "u16" },
  },
}
local LABEL_ACTION = {
  [0] = "INCLUSIVE_LIST",
  [1] = "EXCLUSIVE_LIST",
  [2] = "INCLUSIVE_RANGE",
  [3] = "EXCLUSIVE_RANGE",
  [4] = "BITMAP",
}
local QKD_LINK_SUBTLVS = {
  [1] = { "local_site", "ipv4" },
  [2] = { "far_site", "ipv4" },
  [3] = { "rate_bps", "u32" },
  [4] = { "stock_bits", "u64" },
  [5] = { "buffer_bits", "u64" },
  [6] = { "up", "u32" },
}
local PCEP_TLV = { no_path_reason = 65504 }
local NO_PATH_REASON = {
  [1] = "UNKNOWN_SOURCE",
  [2] = "UNKNOWN_DESTINATION",
  [3] = "SOURCE_NOT_QE_CAPABLE",
  [4] = "QE_DESTINATION_NOT_QE_CAPABLE",
  [5] = "NO_ROUTE",
  [6] = "NO_COMMON_WAVELENGTH",
  [7] = "UNKNOWN_ALGORITHM",
  [8] = "UNKNOWN_LAYER",
  [9] = "BAD_QE_PARAMETERS",
  [10] = "SAME_END_POINTS",
  [11] = "QE_DESTINATION_NOT_ON_PATH",
  [12] = "UNSUPPORTED_REQUEST",
  [13] = "INSUFFICIENT_KEY_RATE",
}
local DATAPLANE = {
  ethertype = 34997,
  version = 1,
  header_len = 18,
  tag_len = 16,
  flag_direction = 8,
  flag_announce = 4,
  flag_reserved = 3,
  directions = { [0] = "head to tail", [1] = "tail to head" },
  algorithms = { [10] = "AES-256-GCM", [11] = "AES-128-GCM", [12] = "ChaCha20-Poly1305" },
}
local ETSI004 = {
  port = 5424,
  version = 1,
  header_len = 8,
  types = {
    [1] = "OPEN",
    [2] = "CONNECT_NONBLOCK",
    [3] = "CONNECT_BLOCKING",
    [4] = "GET_KEY",
    [5] = "CLOSE",
    [129] = "OPEN_REPLY",
    [130] = "CONNECT_NONBLOCK_REPLY",
    [131] = "CONNECT_BLOCKING_REPLY",
    [132] = "GET_KEY_REPLY",
    [133] = "CLOSE_REPLY",
  },
  messages = {
    [1] = {
      name = "OPEN",
      fields = {
        { "destination", "ipv4" },
        { "qos.requested_length", "u32" },
        { "qos.max_bps", "u32" },
        { "qos.priority", "u32" },
        { "qos.timeout_ms", "u32" },
        { "key_handle", "b64" },
      },
      tail = "relay",
    },
    [2] = { name = "CONNECT_NONBLOCK", fields = { { "key_handle", "b64" } } },
    [3] = {
      name = "CONNECT_BLOCKING",
      fields = { { "key_handle", "b64" }, { "timeout_ms", "u32" } },
    },
    [4] = { name = "GET_KEY", fields = { { "key_handle", "b64" } } },
    [5] = { name = "CLOSE", fields = { { "key_handle", "b64" } } },
    [129] = {
      name = "OPEN_REPLY",
      fields = {
        { "status", "u32" },
        { "key_handle", "b64" },
        { "qos.requested_length", "u32" },
        { "qos.max_bps", "u32" },
        { "qos.priority", "u32" },
        { "qos.timeout_ms", "u32" },
      },
    },
    [130] = {
      name = "CONNECT_NONBLOCK_REPLY",
      fields = { { "status", "u32" }, { "key_handle", "b64" } },
    },
    [131] = {
      name = "CONNECT_BLOCKING_REPLY",
      fields = { { "status", "u32" }, { "key_handle", "b64" } },
    },
    [132] = {
      name = "GET_KEY_REPLY",
      fields = { { "status", "u32" }, { "index", "u32" } },
      tail = "key",
    },
    [133] = { name = "CLOSE_REPLY", fields = { { "status", "u32" }, { "key_handle", "b64" } } },
  },
  enums = {
    status = {
      [0] = "SUCCESSFUL",
      [1] = "PEER_NOT_CONNECTED",
      [2] = "INSUFFICIENT_KEY",
      [3] = "GET_KEY_PEER_NOT_CONNECTED",
      [4] = "NO_QKD_CONNECTION",
      [5] = "HANDLE_IN_USE",
      [6] = "TIMEOUT",
    },
  },
}
local SYNC = {
  port = 5626,
  version = 2,
  header_len = 28,
  magic = "QS",
  mac_len = 32,
  types = {
    [1] = "CREATE",
    [2] = "CREATE_RESP",
    [3] = "OPENED",
    [4] = "BIND",
    [5] = "ALLOC",
    [6] = "ALLOC_RESP",
    [7] = "CLOSE",
    [8] = "ACK",
    [9] = "HELLO",
    [10] = "RELAY_OPEN",
    [11] = "RELAY_RESP",
    [12] = "RELAY_KEY",
    [13] = "RELAY_ACK",
    [14] = "RELAY_CLOSE",
    [15] = "RELAY_OPENED",
  },
  messages = {
    [1] = {
      name = "CREATE",
      fields = {
        { "txid", "u32" },
        { "key_handle", "b64" },
        { "opener", "ipv4" },
        { "destination", "ipv4" },
        { "key_length", "u16" },
      },
    },
    [2] = {
      name = "CREATE_RESP",
      fields = { { "txid", "u32" }, { "key_handle", "b64" }, { "result", "u8" } },
    },
    [3] = { name = "OPENED", fields = { { "txid", "u32" }, { "key_handle", "b64" } } },
    [4] = {
      name = "BIND",
      fields = {
        { "txid", "u32" },
        { "key_handle", "b64" },
        { "start_index", "u32" },
        { "key_length", "u16" },
      },
      tail = "key_ids",
    },
    [5] = {
      name = "ALLOC",
      fields = { { "txid", "u32" }, { "key_handle", "b64" }, { "index", "u32" } },
    },
    [6] = {
      name = "ALLOC_RESP",
      fields = {
        { "txid", "u32" },
        { "key_handle", "b64" },
        { "result", "u8" },
        { "start_index", "u32" },
        { "key_length", "u16" },
      },
      tail = "key_ids",
    },
    [7] = { name = "CLOSE", fields = { { "txid", "u32" }, { "key_handle", "b64" } } },
    [8] = {
      name = "ACK",
      fields = { { "txid", "u32" }, { "key_handle", "b64" }, { "result", "u8" } },
    },
    [9] = { name = "HELLO", fields = {} },
    [10] = {
      name = "RELAY_OPEN",
      fields = {
        { "txid", "u32" },
        { "relay_handle", "b64" },
        { "hop_handle", "b64" },
        { "opener", "ipv4" },
        { "destination", "ipv4" },
        { "key_length", "u16" },
      },
      tail = "path",
    },
    [11] = {
      name = "RELAY_RESP",
      fields = { { "txid", "u32" }, { "relay_handle", "b64" }, { "result", "u8" } },
    },
    [12] = {
      name = "RELAY_KEY",
      fields = { { "txid", "u32" }, { "relay_handle", "b64" }, { "index", "u32" } },
      tail = "payload",
    },
    [13] = {
      name = "RELAY_ACK",
      fields = { { "txid", "u32" }, { "relay_handle", "b64" }, { "result", "u8" } },
    },
    [14] = {
      name = "RELAY_CLOSE",
      fields = { { "txid", "u32" }, { "relay_handle", "b64" }, { "result", "u8" } },
    },
    [15] = { name = "RELAY_OPENED", fields = { { "txid", "u32" }, { "relay_handle", "b64" } } },
  },
  enums = {
    result = {
      [0] = "OK",
      [1] = "JOINED",
      [2] = "IN_USE",
      [3] = "NO_ROUTE",
      [4] = "UNKNOWN_HANDLE",
      [5] = "INSUFFICIENT_KEY",
      [6] = "NOT_AUTHORIZED",
      [7] = "NO_QKD_CONNECTION",
    },
  },
}
local IDQ3P = {
  port = 5323,
  version = 1,
  header_len = 8,
  magic = "IQ",
  types = {
    [1] = "GET_NEXT_KEY",
    [2] = "GET_KEY_BY_ID",
    [3] = "STATUS",
    [129] = "KEYS",
    [131] = "STATUS_REPLY",
    [255] = "ERROR",
  },
  messages = {
    [1] = { name = "GET_NEXT_KEY", fields = { { "key_bytes", "u16" }, { "count", "u16" } } },
    [2] = { name = "GET_KEY_BY_ID", fields = { { "key_bytes", "u16" } }, tail = "key_ids" },
    [3] = { name = "STATUS", fields = { { "key_bytes", "u16" } } },
    [129] = {
      name = "KEYS",
      fields = { { "status", "u8" }, { "reserved", "x1" }, { "key_bytes", "u16" } },
      tail = "keys",
    },
    [131] = {
      name = "STATUS_REPLY",
      fields = {
        { "status", "u8" },
        { "reserved", "x1" },
        { "key_bytes", "u16" },
        { "keys_available", "u32" },
        { "bits_available", "u64" },
        { "rate_bps", "u64" },
        { "buffer_bits", "u64" },
        { "delivered_keys", "u64" },
      },
    },
    [255] = { name = "ERROR", fields = { { "status", "u8" } } },
  },
  enums = {
    status = { [0] = "OK", [1] = "INSUFFICIENT_KEY", [2] = "UNKNOWN_KEY_ID", [3] = "BAD_REQUEST" },
  },
}
local KMSTATUS = {
  port = 5425,
  version = 1,
  header_len = 8,
  link = {
    { "far_site", "ipv4" },
    { "rate_bps", "u32" },
    { "stock_bits", "u64" },
    { "buffer_bits", "u64" },
    { "used_bits", "u64" },
    { "services", "u16" },
    { "up", "u8" },
    { "name_length", "u8" },
    { "name", "b32" },
  },
  link_len = 68,
  types = { [1] = "LINKS_REQUEST", [129] = "LINKS_REPLY" },
  messages = {
    [1] = { name = "LINKS_REQUEST", fields = {} },
    [129] = { name = "LINKS_REPLY", fields = {}, tail = "links" },
  },
  enums = {},
}
-- END GENERATED

-- ---------------------------------------------------------------------------- fields

local SIZES = { u8 = 1, u16 = 2, u24 = 3, u32 = 4, i32 = 4, u64 = 8, f32 = 4, ipv4 = 4, ipv6 = 16 }
local INTS = {
    u8 = ProtoField.uint8, u16 = ProtoField.uint16, u24 = ProtoField.uint24,
    u32 = ProtoField.uint32, i32 = ProtoField.int32, u64 = ProtoField.uint64,
}
-- fields shown in hexadecimal
local HEX = {
    sender_epoch = true, receiver_epoch = true, key_id = true, txid = true, request_id = true,
    capabilities = true, reserved = true, reserved2 = true,
}
local LABELS = {
    key_handle = "Key handle (ETSI 004 key_handle)",
    request_id = "Request ID",
    txid = "Transaction ID",
    ["qos.requested_length"] = "QoS: requested key length (bytes)",
    ["qos.max_bps"] = "QoS: max bit rate",
    ["qos.priority"] = "QoS: priority",
    ["qos.timeout_ms"] = "QoS: timeout (ms)",
    timeout_ms = "Timeout (ms)",
    key_length = "Key length (bytes)",
    key_bytes = "Key length (bytes)",
    enc_layer = "Encryption layer",
    refresh_type = "Key refresh type",
    refresh_value = "Key refresh value",
    key_id = "Key ID",
}

local function label(name)
    if LABELS[name] then
        return LABELS[name]
    end
    local s = name:gsub("[._]", " ")
    return s:sub(1, 1):upper() .. s:sub(2)
end

local function kind_size(kind)
    local n = tonumber(kind:match("^[bx](%d+)$"))
    return n or SIZES[kind]
end

-- An integer as decimal text (Lua 5.3+ would write a float as "5.0").
local function int(x)
    return string.format("%d", x)
end

-- Bit `2^k` of a non-negative integer is set (plain arithmetic: Lua 5.2's bit32 is gone
-- from the Lua 5.4 of later Wireshark releases).
local function has_bit(value, k)
    return math.floor(value / 2 ^ k) % 2 == 1
end

-- A protocol's fields, made on first use from a name and its wire kind (u8 ... u64,
-- ipv4, bN raw bytes, xN reserved bytes); `enums` gives a field's value names.
local Fields = {}
Fields.__index = Fields

function Fields.new(prefix, enums, labels)
    local self = { prefix = prefix, enums = enums or {}, labels = labels or {}, by = {}, list = {} }
    return setmetatable(self, Fields)
end

function Fields:add(name, pf)
    self.by[name] = pf
    self.list[#self.list + 1] = pf
    return pf
end

function Fields:get(name, kind)
    local pf = self.by[name]
    if pf then
        return pf
    end
    local abbr, text = self.prefix .. "." .. name, self.labels[name] or label(name)
    if kind:match("^[bx]%d+$") then
        pf = ProtoField.bytes(abbr, text)
    elseif INTS[kind] then
        local vs = self.enums[name]
        pf = INTS[kind](abbr, text, HEX[name] and base.HEX or base.DEC, vs)
    elseif kind == "ipv4" then
        pf = ProtoField.ipv4(abbr, text)
    elseif kind == "ipv6" then
        pf = ProtoField.ipv6(abbr, text)
    elseif kind == "f32" then
        pf = ProtoField.float(abbr, text)
    else
        error("qkdnet.lua: no field kind " .. kind .. " (" .. abbr .. ")")
    end
    return self:add(name, pf)
end

-- Every field of every message of a generated protocol table, made up front (Wireshark
-- wants a protocol's fields before the first packet).
function Fields:declare(messages)
    for _, m in pairs(messages) do
        for _, f in ipairs(m.fields) do
            self:get(f[1], f[2])
        end
    end
end

-- The experts of one protocol: malformed input is an error, an unknown value a warning.
local function experts(prefix)
    return {
        short = ProtoExpert.new(prefix .. ".short", "Too short",
            expert.group.MALFORMED, expert.severity.ERROR),
        length = ProtoExpert.new(prefix .. ".bad_length", "Bad length",
            expert.group.MALFORMED, expert.severity.ERROR),
        unknown = ProtoExpert.new(prefix .. ".unknown", "Unknown value",
            expert.group.PROTOCOL, expert.severity.WARN),
    }
end

local function expert_list(e)
    return { e.short, e.length, e.unknown }
end

-- Add `fields` ({name, kind} in wire order) from `off` up to `limit`; returns the offset
-- after them and their numeric values by name, or nil when the bytes run out.
local function walk(tree, tvb, off, limit, fields, F, ex)
    local values = {}
    for _, f in ipairs(fields) do
        local name, kind = f[1], f[2]
        local size = kind_size(kind)
        if limit - off < size then
            tree:add_proto_expert_info(ex.short, string.format(
                "%s: needs %d bytes at offset %d, %d left", name, size, off, limit - off))
            return nil, values
        end
        local r = tvb(off, size)
        local item = tree:add(F:get(name, kind), r)
        if size <= 4 and INTS[kind] then
            values[name] = r:uint()
            local vs = F.enums[name]
            if vs and vs[values[name]] == nil then
                item:add_proto_expert_info(ex.unknown,
                    string.format("unknown %s %d", name, values[name]))
            end
        end
        off = off + size
    end
    return off, values
end

local function trailing(tree, tvb, off, limit, ex)
    if off < limit then
        tree:add_proto_expert_info(ex.length, string.format("%d bytes after the message", limit - off))
    end
end

-- ------------------------------------------------------- the post-dissector (qkdnet)

local qkdnet = Proto("qkdnet", "QKD network extensions (qkdnet)")
local QE_ENUMS = { enc_layer = ENC_LAYER, algorithm = ALGORITHM, refresh_type = REFRESH_TYPE }
local QE_REGISTRIES = { ENC_LAYER = ENC_LAYER, ALGORITHM = ALGORITHM, REFRESH_TYPE = REFRESH_TYPE }
local EF = Fields.new("qkdnet.ero", QE_ENUMS,
    { key_handle = "Session ID (the ETSI 004 key_handle)" })
EF:add("subobject", ProtoField.none("qkdnet.ero", "QE subobject"))
EF:add("object", ProtoField.string("qkdnet.ero.object", "In object"))
EF:add("hop", ProtoField.ipv4("qkdnet.ero.hop", "Node (the hop before it)"))
EF:add("loose", ProtoField.bool("qkdnet.ero.loose", "Loose", 8, nil, 0x80))
EF:add("type", ProtoField.uint8("qkdnet.ero.type", "Type", base.DEC, nil, 0x7f))
EF:add("length", ProtoField.uint8("qkdnet.ero.length", "Length", base.DEC))
EF:add("key_handle_set", ProtoField.bool("qkdnet.ero.key_handle_set", "Key handle filled in"))
EF:declare({ QE_SUBOBJECT })

local metric_names = {}
for t, m in pairs(METRIC_TYPES) do
    metric_names[t] = m.name
end
local MF = Fields.new("qkdnet.metric")
MF:add("metric", ProtoField.none("qkdnet.metric", "QE METRIC"))
MF:add("type", ProtoField.uint8("qkdnet.metric.type", "Metric type", base.DEC, metric_names))
MF:add("value", ProtoField.float("qkdnet.metric.value", "Metric value"))
MF:add("meaning", ProtoField.string("qkdnet.metric.meaning", "Meaning"))

local RF = Fields.new("qkdnet.ri")
local function bit_mask(bit)
    return math.floor(2 ^ (31 - bit))
end
RF:add("ri", ProtoField.none("qkdnet.ri", "Router Information capabilities"))
RF:add("router", ProtoField.ipv4("qkdnet.ri.router", "Advertising router"))
RF:add("capabilities", ProtoField.uint32("qkdnet.ri.capabilities",
    "Informational capabilities", base.HEX))
RF:add("te", ProtoField.bool("qkdnet.ri.te", "Traffic engineering (bit " .. CP.ri_te_bit .. ")",
    32, nil, bit_mask(CP.ri_te_bit)))
RF:add("qe", ProtoField.bool("qkdnet.ri.qe", "Quantum encryption capable (QE, bit "
    .. CP.ri_qe_bit .. ")", 32, nil, bit_mask(CP.ri_qe_bit)))

local LF = Fields.new("qkdnet.labels")
LF:add("labels", ProtoField.none("qkdnet.labels", "Available labels"))
LF:add("router", ProtoField.ipv4("qkdnet.labels.router", "Advertising router"))
LF:add("link_id", ProtoField.ipv4("qkdnet.labels.link_id", "Link ID"))
LF:add("action", ProtoField.uint16("qkdnet.labels.action", "Action", base.DEC, LABEL_ACTION, 0xf000))
LF:add("num_labels", ProtoField.uint16("qkdnet.labels.num_labels", "Number of labels",
    base.DEC, nil, 0x0fff))
LF:add("length", ProtoField.uint16("qkdnet.labels.length", "Length"))
LF:add("base", ProtoField.uint32("qkdnet.labels.base", "Base label (RFC 6205)", base.HEX))
LF:add("channel", ProtoField.int16("qkdnet.labels.channel",
    "Available channel n (193.1 THz + n x 100 GHz)"))

local PF = Fields.new("qkdnet.pcep")
PF:add("relay", ProtoField.none("qkdnet.relay", "Key relay path"))
PF:add("relay_object", ProtoField.string("qkdnet.relay.object", "In object"))
PF:add("relay_site", ProtoField.ipv4("qkdnet.relay.site", "Site ID"))
PF:add("nopath", ProtoField.none("qkdnet.nopath", "NO-PATH-REASON"))
PF:add("nopath_code", ProtoField.uint32("qkdnet.nopath.code", "Reason", base.DEC, NO_PATH_REASON))
PF:add("nopath_text", ProtoField.string("qkdnet.nopath.text", "Explanation"))

local QLF = Fields.new("qkdnet.qkdlink")
QLF:add("qkdlink", ProtoField.none("qkdnet.qkdlink", "QKD link"))
QLF:add("router", ProtoField.ipv4("qkdnet.qkdlink.router", "Advertising router"))
QLF:add("subtlv", ProtoField.uint16("qkdnet.qkdlink.subtlv", "Unknown sub-TLV (skipped)"))
for _, f in pairs(QKD_LINK_SUBTLVS) do
    QLF:get(f[1], f[2])
end

local QX = experts("qkdnet.expert")
local all = {}
for _, F in ipairs({ EF, MF, RF, LF, PF, QLF }) do
    for _, pf in ipairs(F.list) do
        all[#all + 1] = pf
    end
end
qkdnet.fields = all
qkdnet.experts = expert_list(QX)
qkdnet.prefs.ero_subobject = Pref.uint("QE subobject type", CP.ero_subobject,
    "ERO/RRO subobject type of the QE subobject (gmpls.qe.CODEPOINTS.ero_subobject)")
qkdnet.prefs.te_available_labels = Pref.uint("Available Labels sub-TLV type",
    CP.te_available_labels,
    "OSPF-TE Link TLV sub-TLV type of the wavelength availability (CODEPOINTS.te_available_labels)")
qkdnet.prefs.te_qkd_link = Pref.uint("QKD link TLV type", CP.te_qkd_link,
    "OSPF-TE top-level TLV type of the QKD link TLV (gmpls.qe.CODEPOINTS.te_qkd_link)")
qkdnet.prefs.pcep_relay_tlv = Pref.uint("Relay path TLV type", CP.pcep_relay_tlv,
    "PCEP TLV type of the key relay path (gmpls.qe.CODEPOINTS.pcep_relay_tlv)")

local f_rsvp = Field.new("rsvp")
local f_pcep = Field.new("pcep")
local f_ospf = Field.new("ospf")

-- The output tree, made when the first thing of ours is found in the frame.
local function lazy_root(tree)
    local root
    return function()
        if not root then
            root = tree:add(qkdnet)
        end
        return root
    end
end

local function qe_subobject(root, t, off, len, object, hop)
    local r = t(off, len)
    local st = root():add(EF.by.subobject, r)
    st:append_text(" in " .. object .. (hop and (", node " .. tostring(hop)) or ""))
    st:add(EF.by.object, object):set_generated()
    if hop then
        st:add(EF.by.hop, hop):set_generated()
    end
    st:add(EF.by.loose, t(off, 1))
    st:add(EF.by.type, t(off, 1))
    st:add(EF.by.length, t(off + 1, 1))
    if len ~= QE_SUBOBJECT.length then
        st:add_proto_expert_info(QX.length, string.format(
            "QE subobject of %d bytes, must be %d", len, QE_SUBOBJECT.length))
        return
    end
    local _, v = walk(st, t, off + 2, off + len, QE_SUBOBJECT.fields, EF, QX)
    local handle = t(off + 4, 64):bytes()
    local set = handle ~= ByteArray.new(string.rep("00", 64))
    st:add(EF.by.key_handle_set, set):set_generated()
    if set then
        st:append_text(", key handle " .. handle:subset(0, 8):tohex():lower() .. "...")
    end
    local unit = ({ [1] = " ms", [2] = " MiB" })[v.refresh_type] or ""
    st:append_text(string.format(", layer %s, %s, %d-byte keys, refresh %s %d%s",
        ENC_LAYER[v.enc_layer] or v.enc_layer, ALGORITHM[v.algorithm] or v.algorithm,
        v.key_length, REFRESH_TYPE[v.refresh_type] or v.refresh_type, v.refresh_value, unit))
end

-- The subobjects of an ERO/RRO/IRO body (RFC 3209 §4.3.3): remembers the node each QE
-- subobject follows. Malformed subobjects are the built-in dissector's to flag.
local function subobjects(root, t, off, limit, object)
    local hop
    while limit - off >= 2 do
        local first, len = t(off, 1):uint(), t(off + 1, 1):uint()
        if len < 2 or off + len > limit then
            return
        end
        local stype = first % 0x80 -- below the L bit
        if stype == 1 and len >= 8 then
            hop = t(off + 2, 4):ipv4()
        elseif stype == 4 and len >= 12 then
            hop = t(off + 4, 4):ipv4()
        elseif stype == qkdnet.prefs.ero_subobject then
            qe_subobject(root, t, off, len, object, hop)
        end
        off = off + len
    end
end

local RSVP_ROUTES = { [20] = "RSVP EXPLICIT_ROUTE", [21] = "RSVP RECORD_ROUTE" }

local function rsvp(root, t)
    if t:len() < 8 or t(1, 1):uint() == 12 then
        return -- a Bundle's messages come as RSVP items of their own
    end
    local limit, off = math.min(t(6, 2):uint(), t:len()), 8
    while limit - off >= 4 do
        local len, class = t(off, 2):uint(), t(off + 2, 1):uint()
        if len < 4 or off + len > limit then
            return
        end
        if RSVP_ROUTES[class] then
            subobjects(root, t, off + 4, off + len, RSVP_ROUTES[class])
        end
        off = off + len
    end
end

local PCEP_ROUTES = { [7] = "PCEP ERO", [8] = "PCEP RRO", [10] = "PCEP IRO" }
local PCEP_METRIC = 6

local function metric(root, t, off)
    local mtype = t(off + 7, 1):uint()
    local m = METRIC_TYPES[mtype]
    if not m then
        return
    end
    local st = root():add(MF.by.metric, t(off, 12))
    st:add(MF.by.type, t(off + 7, 1))
    local vi = st:add(MF.by.value, t(off + 8, 4))
    local value = t(off + 8, 4):float()
    st:append_text(string.format(": %s = %g", m.name, value))
    if m.enum then
        local name = QE_REGISTRIES[m.enum][value]
        if name then
            st:add(MF.by.meaning, name):set_generated()
            st:append_text(" (" .. name .. ")")
        else
            vi:add_proto_expert_info(QX.unknown, string.format("no %s %g", m.name, value))
        end
    end
end

-- PCEP objects that carry TLVs of ours, and the length of what comes before the TLVs.
local PCEP_TLV_OBJECTS = { [2] = { "RP", 8 }, [3] = { "NO-PATH", 4 }, [32] = { "LSP", 4 } }

local function pcep_tlvs(root, t, off, limit, object)
    while limit - off >= 4 do
        local ttype, tlen = t(off, 2):uint(), t(off + 2, 2):uint()
        if off + 4 + tlen > limit then
            return
        end
        if ttype == qkdnet.prefs.pcep_relay_tlv then
            local st = root():add(PF.by.relay, t(off, 4 + tlen))
            st:add(PF.by.relay_object, object):set_generated()
            local sites = {}
            for p = off + 4, off + tlen, 4 do
                st:add(PF.by.relay_site, t(p, 4))
                sites[#sites + 1] = tostring(t(p, 4):ipv4())
            end
            st:append_text(" in " .. object .. ": " .. table.concat(sites, " -> "))
            if tlen == 0 or tlen % 4 ~= 0 then
                st:add_proto_expert_info(QX.length, string.format(
                    "relay path of %d bytes: not one or more site IDs", tlen))
            end
        elseif ttype == PCEP_TLV.no_path_reason and tlen >= 4 then
            local st = root():add(PF.by.nopath, t(off, 4 + tlen))
            st:add(PF.by.nopath_code, t(off + 4, 4))
            if tlen > 4 then
                st:add(PF.by.nopath_text, t(off + 8, tlen - 4))
            end
            local code = t(off + 4, 4):uint()
            st:append_text(": " .. (NO_PATH_REASON[code] or tostring(code)))
        end
        off = off + 4 + math.floor((tlen + 3) / 4) * 4
    end
end

local function pcep(root, t)
    if t:len() < 4 then
        return
    end
    local limit, off = math.min(t(2, 2):uint(), t:len()), 4
    while limit - off >= 4 do
        local class, len = t(off, 1):uint(), t(off + 2, 2):uint()
        if len < 4 or off + len > limit then
            return
        end
        if PCEP_ROUTES[class] then
            subobjects(root, t, off + 4, off + len, PCEP_ROUTES[class])
        elseif class == PCEP_METRIC and len >= 12 then
            metric(root, t, off)
        elseif PCEP_TLV_OBJECTS[class] and len >= 4 + PCEP_TLV_OBJECTS[class][2] then
            local o = PCEP_TLV_OBJECTS[class]
            pcep_tlvs(root, t, off + 4 + o[2], off + len, "PCEP " .. o[1])
        end
        off = off + len
    end
end

local OSPF_LS_UPDATE, OPAQUE_TE, OPAQUE_RI, RI_INFO_CAPS = 4, 1, 4, 1

local function ri_lsa(root, t, off, limit, adv)
    while limit - off >= 4 do
        local ttype, tlen = t(off, 2):uint(), t(off + 2, 2):uint()
        if off + 4 + tlen > limit then
            return
        end
        if ttype == RI_INFO_CAPS and tlen >= 4 then
            local st = root():add(RF.by.ri, t(off, 4 + tlen))
            st:add(RF.by.router, adv):set_generated()
            st:add(RF.by.capabilities, t(off + 4, 4))
            st:add(RF.by.te, t(off + 4, 4))
            st:add(RF.by.qe, t(off + 4, 4))
            local qe = has_bit(t(off + 4, 4):uint(), 31 - CP.ri_qe_bit)
            st:append_text(" of " .. tostring(adv) .. (qe and ": QE capable" or ": not QE capable"))
        end
        off = off + 4 + math.floor((tlen + 3) / 4) * 4
    end
end

-- The channel index n of an RFC 6205 lambda label (its low 16 bits, signed).
local function channel(label)
    local n = label % 0x10000
    return n >= 0x8000 and n - 0x10000 or n
end

-- One RFC 7579 label set field; returns the offset after it, or nil if malformed.
local function label_set(st, t, off, limit)
    if limit - off < 8 then
        st:add_proto_expert_info(QX.short, "label set field shorter than 8 bytes")
        return nil
    end
    local word = t(off, 2):uint()
    local action, num = math.floor(word / 0x1000), word % 0x1000
    local len = t(off + 2, 2):uint()
    if len < 8 or len % 4 ~= 0 or off + len > limit then
        st:add_proto_expert_info(QX.length, string.format("label set length %d", len))
        return nil
    end
    st:add(LF.by.action, t(off, 2))
    st:add(LF.by.num_labels, t(off, 2))
    st:add(LF.by.length, t(off + 2, 2))
    st:add(LF.by.base, t(off + 4, 4))
    local base_n, channels = channel(t(off + 4, 4):uint()), {}
    if action == 4 then -- bitmap: bit i (from the MSB) set when channel base + i is free
        for i = 0, math.min(num, (len - 8) * 8) - 1 do
            local byte = t(off + 8 + math.floor(i / 8), 1):uint()
            if has_bit(byte, 7 - i % 8) then
                channels[#channels + 1] = { base_n + i, off + 8 + math.floor(i / 8), 1 }
            end
        end
    elseif action == 0 then -- inclusive list
        channels[1] = { base_n, off + 4, 4 }
        for p = off + 8, off + len - 4, 4 do
            channels[#channels + 1] = { channel(t(p, 4):uint()), p, 4 }
        end
    elseif action == 2 and len >= 12 then -- inclusive range
        for n = base_n, channel(t(off + 8, 4):uint()) do
            channels[#channels + 1] = { n, off + 4, 8 }
        end
    end
    local names = {}
    for _, c in ipairs(channels) do
        st:add(LF.by.channel, t(c[2], c[3]), c[1]):set_generated()
        names[#names + 1] = tostring(c[1])
    end
    st:append_text(": channels " .. (#names > 0 and table.concat(names, ",") or "none"))
    return off + len
end

local TE_LINK, TE_LINK_ID = 2, 2

-- A TE LSA's Link TLV: its Link ID and our Available Labels sub-TLV.
local function te_link(root, t, off, limit, adv)
    local link_id
    while limit - off >= 4 do
        local stype, slen = t(off, 2):uint(), t(off + 2, 2):uint()
        if off + 4 + slen > limit then
            return
        end
        if stype == TE_LINK_ID and slen == 4 then
            link_id = t(off + 4, 4):ipv4()
        elseif stype == qkdnet.prefs.te_available_labels then
            local st = root():add(LF.by.labels, t(off, 4 + slen))
            st:append_text(" (sub-TLV " .. int(stype) .. ") of " .. tostring(adv))
            st:add(LF.by.router, adv):set_generated()
            if link_id then
                st:add(LF.by.link_id, link_id):set_generated()
                st:append_text(" to " .. tostring(link_id))
            end
            local p = off + 4
            while p and p < off + 4 + slen do
                p = label_set(st, t, p, off + 4 + slen)
            end
        end
        off = off + 4 + math.floor((slen + 3) / 4) * 4
    end
end

-- The QKD link TLV (a top-level TE TLV): its sub-TLVs, each required once.
local function qkd_link(root, t, off, len, adv)
    local st = root():add(QLF.by.qkdlink, t(off, 4 + len))
    st:add(QLF.by.router, adv):set_generated()
    local seen, v, p, limit = {}, {}, off + 4, off + 4 + len
    while limit - p >= 4 do
        local stype, slen = t(p, 2):uint(), t(p + 2, 2):uint()
        if p + 4 + slen > limit then
            st:add_proto_expert_info(QX.length, "sub-TLV " .. int(stype) .. " runs past the TLV")
            return
        end
        local f = QKD_LINK_SUBTLVS[stype]
        if not f then
            st:add(QLF.by.subtlv, t(p, 2))
        elseif slen ~= kind_size(f[2]) then
            st:add_proto_expert_info(QX.length, string.format("%s: %d bytes, not %d", f[1], slen,
                kind_size(f[2])))
        else
            local r = t(p + 4, slen)
            local item = st:add(QLF:get(f[1], f[2]), r)
            v[f[1]] = f[2] == "ipv4" and tostring(r:ipv4()) or tostring(r:uint64())
            if seen[stype] then
                item:add_proto_expert_info(QX.length, f[1] .. " repeated")
            end
            seen[stype] = true
        end
        p = p + 4 + math.floor((slen + 3) / 4) * 4
    end
    local missing = {}
    for stype, f in pairs(QKD_LINK_SUBTLVS) do
        if not seen[stype] then
            missing[#missing + 1] = f[1]
        end
    end
    if #missing > 0 then
        table.sort(missing)
        st:add_proto_expert_info(QX.length, "missing " .. table.concat(missing, ", "))
    end
    st:append_text(string.format(" of %s: %s -> %s, %s, %s b/s, stock %s bits", tostring(adv),
        v.local_site or "?", v.far_site or "?", v.up == "1" and "up" or "down",
        v.rate_bps or "?", v.stock_bits or "?"))
end

local function te_lsa(root, t, off, limit, adv)
    while limit - off >= 4 do
        local ttype, tlen = t(off, 2):uint(), t(off + 2, 2):uint()
        if off + 4 + tlen > limit then
            return
        end
        if ttype == TE_LINK then
            te_link(root, t, off + 4, off + 4 + tlen, adv)
        elseif ttype == qkdnet.prefs.te_qkd_link then
            qkd_link(root, t, off, tlen, adv)
        end
        off = off + 4 + math.floor((tlen + 3) / 4) * 4
    end
end

local function ospf(root, t)
    if t:len() < 28 or t(1, 1):uint() ~= OSPF_LS_UPDATE then
        return
    end
    local limit = math.min(t(2, 2):uint(), t:len())
    local off = 28
    for _ = 1, t(24, 4):uint() do
        if limit - off < 20 then
            return
        end
        local ltype, len = t(off + 3, 1):uint(), t(off + 18, 2):uint()
        if len < 20 or off + len > limit then
            return
        end
        local opaque = t(off + 4, 1):uint()
        if ltype >= 9 and ltype <= 11 and opaque == OPAQUE_RI then
            ri_lsa(root, t, off + 20, off + len, t(off + 8, 4):ipv4())
        elseif ltype >= 9 and ltype <= 11 and opaque == OPAQUE_TE then
            te_lsa(root, t, off + 20, off + len, t(off + 8, 4):ipv4())
        end
        off = off + len
    end
end

function qkdnet.dissector(_, _, tree)
    local root = lazy_root(tree)
    for _, fi in ipairs({ f_rsvp() }) do
        rsvp(root, fi.range:tvb())
    end
    for _, fi in ipairs({ f_pcep() }) do
        pcep(root, fi.range:tvb())
    end
    for _, fi in ipairs({ f_ospf() }) do
        ospf(root, fi.range:tvb())
    end
end

register_postdissector(qkdnet)

-- ------------------------------------------------------ the UDP protocols: shared part

-- The tails: a message's variable last part (gmpls.layout tails), by field name.
local TAILS = {}

-- ETSI 004 QKD_GET_KEY reply: a 16-bit length, then the key.
function TAILS.key(tree, tvb, off, limit, F, ex)
    if limit - off < 2 then
        tree:add_proto_expert_info(ex.short, "no key length")
        return limit
    end
    local n = tvb(off, 2):uint()
    tree:add(F.by.key_length, tvb(off, 2))
    if limit - off - 2 < n then
        tree:add_proto_expert_info(ex.length, string.format(
            "key of %d bytes, %d left", n, limit - off - 2))
        return limit
    end
    if n > 0 then
        tree:add(F.by.key, tvb(off + 2, n))
    end
    return off + 2 + n
end

-- A list of 64-bit key IDs: a 16-bit count, then the IDs.
function TAILS.key_ids(tree, tvb, off, limit, F, ex, values)
    if limit - off < 2 then
        tree:add_proto_expert_info(ex.short, "no key ID count")
        return limit
    end
    local n = tvb(off, 2):uint()
    tree:add(F.by.count, tvb(off, 2))
    values.count = n
    if limit - off - 2 < 8 * n then
        tree:add_proto_expert_info(ex.length, string.format(
            "%d key IDs need %d bytes, %d left", n, 8 * n, limit - off - 2))
        return limit
    end
    for i = 0, n - 1 do
        tree:add(F.by.key_id, tvb(off + 2 + 8 * i, 8))
    end
    return off + 2 + 8 * n
end

-- IDQ3P KEYS: a 16-bit count, then (key ID, key material) pairs of one size.
function TAILS.keys(tree, tvb, off, limit, F, ex, values)
    if limit - off < 2 then
        tree:add_proto_expert_info(ex.short, "no key count")
        return limit
    end
    local n = tvb(off, 2):uint()
    tree:add(F.by.count, tvb(off, 2))
    values.count = n
    off = off + 2
    if n == 0 then
        return off
    end
    local size = math.floor((limit - off) / n)
    if size * n ~= limit - off or size <= 8 then
        tree:add_proto_expert_info(ex.length, string.format(
            "%d bytes are not %d keys", limit - off, n))
        return limit
    end
    if size - 8 ~= values.key_bytes then
        tree:add_proto_expert_info(ex.length, string.format(
            "keys of %d bytes, key_bytes says %d", size - 8, values.key_bytes or -1))
    end
    for i = 0, n - 1 do
        local kt = tree:add(F.by.keyrec, tvb(off + size * i, size))
        kt:append_text(" " .. int(i))
        kt:add(F.by.key_id, tvb(off + size * i, 8))
        kt:add(F.by.key, tvb(off + size * i + 8, size - 8))
    end
    return limit
end

-- ETSI 004 QKD_OPEN's relay path (our extension): nothing, or a count and the site IDs.
function TAILS.relay(tree, tvb, off, limit, F, ex)
    if off >= limit then
        return off
    end
    local n = tvb(off, 1):uint()
    tree:add(F.by.relay_count, tvb(off, 1))
    if limit - off - 1 < 4 * n then
        tree:add_proto_expert_info(ex.length, string.format(
            "%d relay sites need %d bytes, %d left", n, 4 * n, limit - off - 1))
        return limit
    end
    for i = 0, n - 1 do
        tree:add(F.by.relay_site, tvb(off + 1 + 4 * i, 4))
    end
    return off + 1 + 4 * n
end

-- Sync RELAY_OPEN's path: site IDs to the end of the body, head site first.
function TAILS.path(tree, tvb, off, limit, F, ex)
    if (limit - off) % 4 ~= 0 then
        tree:add_proto_expert_info(ex.length, string.format(
            "%d bytes are not a list of site IDs", limit - off))
        return limit
    end
    for p = off, limit - 4, 4 do
        tree:add(F.by.path, tvb(p, 4))
    end
    return limit
end

-- Sync RELAY_KEY's payload: a 16-bit length, then the key XOR this hop's key (a one-time
-- pad), or nothing from the head. Its length is shown, its bytes are not: with a capture of
-- the hop's IDQ3P link they would give the key away.
function TAILS.payload(tree, tvb, off, limit, F, ex)
    if limit - off < 2 then
        tree:add_proto_expert_info(ex.short, "no payload length")
        return limit
    end
    local n = tvb(off, 2):uint()
    tree:add(F.by.payload_length, tvb(off, 2))
    if limit - off - 2 < n then
        tree:add_proto_expert_info(ex.length, string.format(
            "payload of %d bytes, %d left", n, limit - off - 2))
        return limit
    end
    if n > 0 then
        tree:add(F.by.payload, tvb(off + 2, n))
    end
    return off + 2 + n
end

-- Where a KM status link record keeps its name.
local KM_NAME = { offset = 0 }
for _, f in ipairs(KMSTATUS.link) do
    if f[1] == "name" then
        KM_NAME.size = kind_size(f[2])
        break
    end
    KM_NAME.offset = KM_NAME.offset + kind_size(f[2])
end

-- KM status LINKS_REPLY: a 16-bit count, then that many link records.
function TAILS.links(tree, tvb, off, limit, F, ex, values)
    if limit - off < 2 then
        tree:add_proto_expert_info(ex.short, "no link count")
        return limit
    end
    local n = tvb(off, 2):uint()
    tree:add(F.by.count, tvb(off, 2))
    values.count = n
    off = off + 2
    for i = 1, n do
        if limit - off < KMSTATUS.link_len then
            tree:add_proto_expert_info(ex.length, string.format(
                "link %d of %d: %d bytes left, a link is %d", i, n, limit - off, KMSTATUS.link_len))
            return limit
        end
        local lt = tree:add(F.by.link, tvb(off, KMSTATUS.link_len))
        local _, v = walk(lt, tvb, off, off + KMSTATUS.link_len, KMSTATUS.link, F, ex)
        local name = tvb(off + KM_NAME.offset, KM_NAME.size):stringz()
        lt:append_text(string.format(" %d: %s, %s", i, name, v.up == 1 and "up" or "down"))
        off = off + KMSTATUS.link_len
    end
    return off
end

-- The body of message `mtype` of a generated protocol table, from `off` to `limit`.
local function body(tree, tvb, off, limit, P, mtype, F, ex)
    local m = P.messages[mtype]
    if not m then
        tree:add_proto_expert_info(ex.unknown, string.format("unknown message type 0x%02x", mtype))
        return {}
    end
    local after, values = walk(tree, tvb, off, limit, m.fields, F, ex)
    if not after then
        return values
    end
    if m.tail then
        local tail = TAILS[m.tail]
        if not tail then
            tree:add_proto_expert_info(ex.unknown, "no decoder for " .. m.tail .. " in qkdnet.lua")
            return values
        end
        after = tail(tree, tvb, after, limit, F, ex, values)
    end
    trailing(tree, tvb, after, limit, ex)
    return values
end

-- "GET_KEY_REPLY status=SUCCESSFUL index=3": the message's name and a few of its values.
local function summary(P, mtype, values, F)
    local s = P.types[mtype] or string.format("type 0x%02x", mtype)
    for _, name in ipairs({ "status", "result", "index", "start_index", "key_bytes", "count" }) do
        if values[name] then
            local vs = F.enums[name]
            s = s .. " " .. name .. "=" .. ((vs and vs[values[name]]) or int(values[name]))
        end
    end
    return s
end

-- Requests and their replies (a reply's type has 0x80 set), matched by the two endpoints and
-- the request ID: each side shows the other's frame number (a request's reply once the
-- capture has been read through: Wireshark, or tshark -2).
local function pairing(proto, F)
    local seen = { request = {}, reply = {} }
    F:add("response_in", ProtoField.framenum(F.prefix .. ".response_in", "Response in",
        base.NONE, frametype.RESPONSE))
    F:add("request_in", ProtoField.framenum(F.prefix .. ".request_in", "Request in",
        base.NONE, frametype.REQUEST))
    function proto.init()
        seen = { request = {}, reply = {} }
    end
    return function(tree, pinfo, mtype, request_id)
        local reply = mtype >= 0x80
        local a = tostring(pinfo.src) .. ":" .. pinfo.src_port
        local b = tostring(pinfo.dst) .. ":" .. pinfo.dst_port
        local key = (reply and (b .. ">" .. a) or (a .. ">" .. b)) .. "#" .. request_id
        local mine, other = seen.request, seen.reply
        if reply then
            mine, other = other, mine
        end
        if not pinfo.visited and not mine[key] then
            mine[key] = pinfo.number
        end
        if other[key] then
            tree:add(reply and F.by.request_in or F.by.response_in, other[key]):set_generated()
        end
    end
end

local function udp_protocol(name, desc, P, header)
    local proto = Proto(name, desc)
    local F = Fields.new(name, P.enums)
    F:add("type", ProtoField.uint8(name .. ".type", "Message type", base.HEX, P.types))
    for _, f in ipairs(header) do
        F:get(f[1], f[2])
    end
    F:declare(P.messages)
    return proto, F, experts(name)
end

-- ----------------------------------------------- qkdnet.etsi004 and qkdnet.kmstatus

-- A dissector for the ETSI 004 header (version, type, reserved, request ID) and a body.
local function etsi_like(proto, P, F, X, column)
    local pair = pairing(proto, F)
    return function(tvb, pinfo, tree)
        pinfo.cols.protocol = column
        local st = tree:add(proto, tvb())
        if tvb:len() < P.header_len then
            st:add_proto_expert_info(X.short, string.format("%d bytes, the header is %d",
                tvb:len(), P.header_len))
            return
        end
        local vi = st:add(F.by.version, tvb(0, 1))
        local mtype = tvb(1, 1):uint()
        st:add(F.by.type, tvb(1, 1))
        st:add(F.by.reserved, tvb(2, 2))
        st:add(F.by.request_id, tvb(4, 4))
        if tvb(0, 1):uint() ~= P.version then
            vi:add_proto_expert_info(X.unknown, "unsupported version " .. int(tvb(0, 1):uint()))
            return
        end
        pair(st, pinfo, mtype, tvb(4, 4):uint())
        local values = body(st, tvb, P.header_len, tvb:len(), P, mtype, F, X)
        local s = summary(P, mtype, values, F) .. " request_id=" .. int(tvb(4, 4):uint())
        st:append_text(", " .. s)
        pinfo.cols.info = s
    end
end

local ETSI_HEADER = { { "version", "u8" }, { "reserved", "u16" }, { "request_id", "u32" } }

local etsi, ETF, ETX = udp_protocol("qkdnet.etsi004", "ETSI GS QKD 004 (qkdnet wire format)",
    ETSI004, ETSI_HEADER)
ETF:get("key_length", "u16")
ETF:add("key", ProtoField.bytes("qkdnet.etsi004.key",
    "Key (secret: ETSI 004 carries it in clear in this testbed)"))
ETF:add("relay_count", ProtoField.uint8("qkdnet.etsi004.relay_count", "Relay path: sites"))
ETF:add("relay_site", ProtoField.ipv4("qkdnet.etsi004.relay_site", "Relay path: site ID"))
etsi.dissector = etsi_like(etsi, ETSI004, ETF, ETX, "ETSI004")
etsi.fields = ETF.list
etsi.experts = expert_list(ETX)

local km, KF, KX = udp_protocol("qkdnet.kmstatus", "qkdnet key manager status", KMSTATUS,
    ETSI_HEADER)
KF:get("count", "u16")
KF:add("link", ProtoField.none("qkdnet.kmstatus.link", "QKD link"))
KF:add("name", ProtoField.string("qkdnet.kmstatus.name", "Name"))
KF:declare({ { fields = KMSTATUS.link } })
km.dissector = etsi_like(km, KMSTATUS, KF, KX, "KM status")
km.fields = KF.list
km.experts = expert_list(KX)

-- -------------------------------------------------------------------- qkdnet.sync

local syncp, SF, SX = udp_protocol("qkdnet.sync", "qkdnet key proxy sync channel", SYNC, {
    { "magic", "b2" }, { "version", "u8" }, { "sender_epoch", "u64" },
    { "receiver_epoch", "u64" }, { "counter", "u64" },
})
SF:get("count", "u16")
SF:get("key_id", "u64")
SF:add("hmac", ProtoField.bytes("qkdnet.sync.hmac", "HMAC-SHA256 (not verified: its key is secret)"))
SF:add("path", ProtoField.ipv4("qkdnet.sync.path", "Relay path: site ID"))
SF:get("payload_length", "u16")
SF:add("payload", ProtoField.none("qkdnet.sync.payload",
    "Payload: the key XOR this hop's key (a one-time pad; bytes not shown)"))
syncp.fields = SF.list
syncp.experts = expert_list(SX)

function syncp.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "QKD sync"
    local st = tree:add(syncp, tvb())
    local n = tvb:len()
    if n < SYNC.header_len + SYNC.mac_len then
        st:add_proto_expert_info(SX.short, string.format(
            "%d bytes, a frame has at least %d", n, SYNC.header_len + SYNC.mac_len))
        return
    end
    local mi = st:add(SF.by.magic, tvb(0, 2))
    local vi = st:add(SF.by.version, tvb(2, 1))
    local mtype = tvb(3, 1):uint()
    st:add(SF.by.type, tvb(3, 1))
    st:add(SF.by.sender_epoch, tvb(4, 8))
    st:add(SF.by.receiver_epoch, tvb(12, 8))
    st:add(SF.by.counter, tvb(20, 8))
    local limit = n - SYNC.mac_len
    st:add(SF.by.hmac, tvb(limit, SYNC.mac_len))
    if tvb(0, 2):string() ~= SYNC.magic then
        mi:add_proto_expert_info(SX.unknown, "not " .. SYNC.magic)
        return
    end
    if tvb(2, 1):uint() ~= SYNC.version then
        vi:add_proto_expert_info(SX.unknown, "unsupported version " .. int(tvb(2, 1):uint()))
        return
    end
    local values = body(st, tvb, SYNC.header_len, limit, SYNC, mtype, SF, SX)
    local s = summary(SYNC, mtype, values, SF) .. " counter=" .. tostring(tvb(20, 8):uint64())
    st:append_text(", " .. s)
    pinfo.cols.info = s
end

-- ------------------------------------------------------------------- qkdnet.idq3p

local idq, IF, IX = udp_protocol("qkdnet.idq3p", "IDQ3P emulator protocol (qkdnet)", IDQ3P,
    { { "magic", "b2" }, { "version", "u8" }, { "request_id", "u32" } })
IF:get("count", "u16")
IF:get("key_id", "u64")
IF:add("keyrec", ProtoField.none("qkdnet.idq3p.keyrec", "Key"))
IF:add("key", ProtoField.bytes("qkdnet.idq3p.key",
    "Key material (secret: the emulator's south link carries it in clear)"))
local idq_pair = pairing(idq, IF)
idq.fields = IF.list
idq.experts = expert_list(IX)

function idq.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "IDQ3P"
    local st = tree:add(idq, tvb())
    if tvb:len() < IDQ3P.header_len then
        st:add_proto_expert_info(IX.short, string.format("%d bytes, the header is %d",
            tvb:len(), IDQ3P.header_len))
        return
    end
    local mi = st:add(IF.by.magic, tvb(0, 2))
    local vi = st:add(IF.by.version, tvb(2, 1))
    local mtype = tvb(3, 1):uint()
    st:add(IF.by.type, tvb(3, 1))
    st:add(IF.by.request_id, tvb(4, 4))
    if tvb(0, 2):string() ~= IDQ3P.magic then
        mi:add_proto_expert_info(IX.unknown, "not " .. IDQ3P.magic)
        return
    end
    if tvb(2, 1):uint() ~= IDQ3P.version then
        vi:add_proto_expert_info(IX.unknown, "unsupported version " .. int(tvb(2, 1):uint()))
        return
    end
    idq_pair(st, pinfo, mtype, tvb(4, 4):uint())
    local values = body(st, tvb, IDQ3P.header_len, tvb:len(), IDQ3P, mtype, IF, IX)
    local s = summary(IDQ3P, mtype, values, IF) .. " request_id=" .. int(tvb(4, 4):uint())
    st:append_text(", " .. s)
    pinfo.cols.info = s
end

local udp_port = DissectorTable.get("udp.port")
udp_port:add(ETSI004.port, etsi)
udp_port:add(SYNC.port, syncp)
udp_port:add(IDQ3P.port, idq)
udp_port:add(KMSTATUS.port, km)

-- --------------------------------------------------------------- qkdnet.dataplane
-- The encrypted data plane of a QE service on a channel (docs/dataplane.md): Ethernet II
-- with EtherType 0x88B5, the QE header (version, D and A flags, algorithm, key index,
-- receive index, packet number), the AEAD ciphertext of the whole client frame, its tag.

local dp = Proto("qkdnet.dataplane", "QE data plane (qkdnet)")
local DF = {
    version = ProtoField.uint8("qkdnet.dataplane.version", "Version", base.DEC, nil, 0xF0),
    direction = ProtoField.uint8("qkdnet.dataplane.direction", "Direction (D)", base.DEC,
        DATAPLANE.directions, DATAPLANE.flag_direction),
    announce = ProtoField.bool("qkdnet.dataplane.announce", "Announcement (A)", 8, nil,
        DATAPLANE.flag_announce),
    reserved = ProtoField.uint8("qkdnet.dataplane.reserved", "Reserved flags", base.HEX, nil,
        DATAPLANE.flag_reserved),
    algorithm = ProtoField.uint8("qkdnet.dataplane.algorithm", "Algorithm", base.DEC,
        DATAPLANE.algorithms),
    key_index = ProtoField.uint32("qkdnet.dataplane.key_index", "Key index"),
    rx_index = ProtoField.uint32("qkdnet.dataplane.rx_index",
        "Receive index (the newest key the sender holds)"),
    pn = ProtoField.uint64("qkdnet.dataplane.pn", "Packet number"),
    ciphertext = ProtoField.bytes("qkdnet.dataplane.ciphertext",
        "Ciphertext (the client's Ethernet frame, encrypted)"),
    tag = ProtoField.bytes("qkdnet.dataplane.tag", "Authentication tag"),
}
local DX = experts("qkdnet.dataplane")
dp.fields = { DF.version, DF.direction, DF.announce, DF.reserved, DF.algorithm, DF.key_index,
    DF.rx_index, DF.pn, DF.ciphertext, DF.tag }
dp.experts = expert_list(DX)

function dp.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "QE data"
    local n = tvb:len()
    local st = tree:add(dp, tvb())
    local need = DATAPLANE.header_len + DATAPLANE.tag_len
    if n < need then
        st:add_proto_expert_info(DX.short, string.format("%d bytes, header and tag need %d",
            n, need))
        return n
    end
    local first = tvb(0, 1):uint()
    local vi = st:add(DF.version, tvb(0, 1))
    st:add(DF.direction, tvb(0, 1))
    st:add(DF.announce, tvb(0, 1))
    local ri = st:add(DF.reserved, tvb(0, 1))
    local ai = st:add(DF.algorithm, tvb(1, 1))
    st:add(DF.key_index, tvb(2, 4))
    st:add(DF.rx_index, tvb(6, 4))
    local pi = st:add(DF.pn, tvb(10, 8))
    local body = n - DATAPLANE.header_len - DATAPLANE.tag_len
    if body > 0 then
        st:add(DF.ciphertext, tvb(DATAPLANE.header_len, body))
    end
    st:add(DF.tag, tvb(n - DATAPLANE.tag_len, DATAPLANE.tag_len))
    if bit.rshift(first, 4) ~= DATAPLANE.version then
        vi:add_proto_expert_info(DX.unknown, "unsupported version " .. bit.rshift(first, 4))
    end
    if bit.band(first, DATAPLANE.flag_reserved) ~= 0 then
        ri:add_proto_expert_info(DX.length, "reserved flag bits set")
    end
    local alg = tvb(1, 1):uint()
    if DATAPLANE.algorithms[alg] == nil then
        ai:add_proto_expert_info(DX.unknown, "algorithm " .. alg .. " has no data plane")
    end
    if tvb(10, 8):uint64() == UInt64(0) then
        pi:add_proto_expert_info(DX.length, "packet number 0 is never sent")
    end
    local announce = bit.band(first, DATAPLANE.flag_announce) ~= 0
    if announce and body ~= 0 then
        st:add_proto_expert_info(DX.length, string.format(
            "an announcement carries no frame, this one %d bytes", body))
    end
    local dir = bit.band(first, DATAPLANE.flag_direction) ~= 0 and "tail>head" or "head>tail"
    local s = string.format("%s %s key=%d rx=%d pn=%s len=%d", announce and "Announce" or "Data",
        dir, tvb(2, 4):uint(), tvb(6, 4):uint(), tostring(tvb(10, 8):uint64()), body)
    st:append_text(", " .. s)
    pinfo.cols.info = s
    return n
end

DissectorTable.get("ethertype"):add(DATAPLANE.ethertype, dp)
