"""sipp scenarios of the cluster test (XML; every ``[fieldN]`` comes from an ``-inf`` CSV).

* REGISTER: one user per call (field0 user, field1 its ``[authentication username=...
  password=...]`` keyword, field2:field3 the contact),
  answering the registrar's 401 (digest through ``[authentication]``). Behind a round-robin
  front the challenge and the answer usually reach two different nodes.
* QUERY: a REGISTER without Contact (RFC 3261 §10.2.3, "fetching bindings") whose 200 must
  list a Contact (``check_it``: the call fails otherwise): does the registration resolve?
* UAC: INVITE to field0@example.com through the front, route set from the 200's
  Record-Route (``rrs``), ACK and BYE along it (``[routes]``, ``[next_url]``), a pause of
  ``-d`` ms in between. A ``log`` line per call start and per call done (``-trace_logs``)
  lets the test account for every call by its Call-ID.
* UAS: answers INVITE with 180 and 200 (copying Record-Route), then ACK and BYE.
"""

from __future__ import annotations

REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[field2]:[field3]>
      Expires: 900
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[field2]:[field3]>
      [field1]
      Expires: 900
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

QUERY = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="query bindings">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[field0]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      [field1]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="^ *&lt;sip:[^@]+@[0-9.]+:[0-9]+&gt;;expires=[0-9]+" search_in="hdr"
            header="Contact:" check_it="true" assign_to="contact"/>
    </action>
  </recv>
  <Reference variables="contact"/>
</scenario>
"""

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call through the front">
  <nop>
    <action><log message="START [call_id] [field0]"/></action>
  </nop>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field0]@[domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:caller@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:caller@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:caller@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[domain]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200">
    <action><log message="DONE [call_id] [field0]"/></action>
  </recv>
</scenario>
"""

UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer calls">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""
