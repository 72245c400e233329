// libsrtp 3 API (as used by mediasoup's worker) on top of Debian's libsrtp 2.
//
// mediasoup includes <srtp.h> and expects versatica's libsrtp 3 fork. This
// header is found first on the include path, pulls in libsrtp 2 and adds the
// few libsrtp 3 entry points mediasoup calls. The only source edit it needs is
// in SrtpSession.cpp: the policy variable is declared as ms_srtp3_policy_t,
// because libsrtp 2 already uses the name srtp_policy_t for a plain struct.
#ifndef MS_COMPAT_LIBSRTP2_SRTP_H
#define MS_COMPAT_LIBSRTP2_SRTP_H

#include <srtp2/srtp.h>

#ifdef __cplusplus

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

// Error codes that only exist in libsrtp 3 (values outside libsrtp 2's range;
// libsrtp 2 never returns them, they only appear in mediasoup's string table).
constexpr srtp_err_status_t srtp_err_status_buffer_small = static_cast<srtp_err_status_t>(100);
constexpr srtp_err_status_t srtp_err_status_cryptex_err  = static_cast<srtp_err_status_t>(101);

// libsrtp 3's opaque policy handle. libsrtp 2 keeps a pointer to the key in
// the policy struct, so the handle owns the key buffer too.
struct ms_srtp3_policy
{
	srtp_policy_t policy;
	unsigned char key[SRTP_MAX_KEY_LEN];
};
using ms_srtp3_policy_t = ms_srtp3_policy*;

inline srtp_err_status_t srtp_create(srtp_t* session, ms_srtp3_policy_t p)
{
	return srtp_create(session, &p->policy);
}

inline srtp_err_status_t srtp_policy_create(ms_srtp3_policy_t* out)
{
	*out = new (std::nothrow) ms_srtp3_policy{};
	return *out ? srtp_err_status_ok : srtp_err_status_alloc_fail;
}

inline void srtp_policy_destroy(ms_srtp3_policy_t p)
{
	if (p)
	{
		std::memset(p->key, 0, sizeof(p->key));
		delete p;
	}
}

inline srtp_err_status_t srtp_policy_set_ssrc(ms_srtp3_policy_t p, srtp_ssrc_t ssrc)
{
	p->policy.ssrc = ssrc;
	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_profile(ms_srtp3_policy_t p, srtp_profile_t profile)
{
	const srtp_err_status_t err = srtp_crypto_policy_set_from_profile_for_rtp(&p->policy.rtp, profile);
	if (err != srtp_err_status_ok)
		return err;
	return srtp_crypto_policy_set_from_profile_for_rtcp(&p->policy.rtcp, profile);
}

// libsrtp 2 wants one buffer holding master key followed by master salt.
inline srtp_err_status_t srtp_policy_add_key(
  ms_srtp3_policy_t p,
  const uint8_t* key,
  size_t keyLen,
  const uint8_t* salt,
  size_t saltLen,
  const uint8_t* /*mki*/,
  size_t mkiLen)
{
	if (mkiLen != 0 || keyLen + saltLen > sizeof(p->key))
		return srtp_err_status_bad_param;
	std::memcpy(p->key, key, keyLen);
	std::memcpy(p->key + keyLen, salt, saltLen);
	p->policy.key = p->key;
	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_allow_repeat_tx(ms_srtp3_policy_t p, bool allow)
{
	p->policy.allow_repeat_tx = allow ? 1 : 0;
	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_policy_set_window_size(ms_srtp3_policy_t p, size_t windowSize)
{
	p->policy.window_size = windowSize;
	return srtp_err_status_ok;
}

inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{
	return srtp_remove_stream(session, ssrc);
}

// libsrtp 3 reads from `in` and writes to `out` (which may be the same
// buffer), with size_t lengths; libsrtp 2 works in place with int lengths.
// These overloads copy, then call libsrtp 2's in-place functions.
namespace ms_srtp_compat
{
	using InPlaceFn = srtp_err_status_t (*)(srtp_t, void*, int*);

	inline srtp_err_status_t Run(
	  InPlaceFn fn,
	  srtp_t ctx,
	  const uint8_t* in,
	  size_t inLen,
	  uint8_t* out,
	  size_t* outLen,
	  size_t growth)
	{
		if (*outLen < inLen + growth || inLen > 0x7fffffff)
			return srtp_err_status_bad_param;
		if (out != in)
			std::memmove(out, in, inLen);
		int len = static_cast<int>(inLen);
		const srtp_err_status_t err = fn(ctx, out, &len);
		if (err == srtp_err_status_ok)
			*outLen = static_cast<size_t>(len);
		return err;
	}
} // namespace ms_srtp_compat

inline srtp_err_status_t srtp_protect(
  srtp_t ctx, const uint8_t* rtp, size_t rtpLen, uint8_t* srtp, size_t* srtpLen, size_t /*mkiIndex*/)
{
	return ms_srtp_compat::Run(
	  static_cast<ms_srtp_compat::InPlaceFn>(srtp_protect), ctx, rtp, rtpLen, srtp, srtpLen, SRTP_MAX_TRAILER_LEN);
}

inline srtp_err_status_t srtp_unprotect(
  srtp_t ctx, const uint8_t* srtp, size_t srtpLen, uint8_t* rtp, size_t* rtpLen)
{
	return ms_srtp_compat::Run(
	  static_cast<ms_srtp_compat::InPlaceFn>(srtp_unprotect), ctx, srtp, srtpLen, rtp, rtpLen, 0);
}

inline srtp_err_status_t srtp_protect_rtcp(
  srtp_t ctx, const uint8_t* rtcp, size_t rtcpLen, uint8_t* srtcp, size_t* srtcpLen, size_t /*mkiIndex*/)
{
	// libsrtp 2 may append the 4-byte SRTCP index on top of the trailer.
	return ms_srtp_compat::Run(
	  static_cast<ms_srtp_compat::InPlaceFn>(srtp_protect_rtcp),
	  ctx, rtcp, rtcpLen, srtcp, srtcpLen, SRTP_MAX_TRAILER_LEN + 4);
}

inline srtp_err_status_t srtp_unprotect_rtcp(
  srtp_t ctx, const uint8_t* srtcp, size_t srtcpLen, uint8_t* rtcp, size_t* rtcpLen)
{
	return ms_srtp_compat::Run(
	  static_cast<ms_srtp_compat::InPlaceFn>(srtp_unprotect_rtcp), ctx, srtcp, srtcpLen, rtcp, rtcpLen, 0);
}

#endif // __cplusplus

#endif // MS_COMPAT_LIBSRTP2_SRTP_H
