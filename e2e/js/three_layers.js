// three_layers.js publishes a 1280×720 camera through the SDK as a student
// (TOKEN is replaced by a JSON string) and reports the camera's simulcast
// encodings, what each one encodes, and the `layers` events the SDK
// dispatched. It closes the client before returning.
(async () => {
  const {InvigilClient} = await import('/sdk/invigil.js');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const client = new InvigilClient({token: TOKEN, logger: console});
  const events = [];
  client.addEventListener('layers', ({detail}) => events.push({active: detail.active, requested: detail.requested}));
  const result = {};
  try {
    await client.openCamera({video: {width: {ideal: 1280}, height: {ideal: 720}}, audio: false});
    await client.connect();
    await client.publishCamera({video: true, audio: false});
    const sender = client.peerConnection.getTransceivers().find((t) => t.sender.track?.kind === 'video').sender;
    const settings = sender.track.getSettings();
    result.capture = {width: settings.width, height: settings.height};
    result.encodings = sender.getParameters().encodings.map((e) => ({
      rid: e.rid, scaleResolutionDownBy: e.scaleResolutionDownBy, maxBitrate: e.maxBitrate, active: e.active,
    }));
    // Until the server's first `layers` has been applied and q has encoded a while.
    for (let i = 0; i < 100; i++) {
      result.outbound = [];
      const stats = await client.peerConnection.getStats();
      stats.forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          result.outbound.push({rid: s.rid, active: s.active !== false, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
            framesEncoded: s.framesEncoded ?? 0, codec: stats.get(s.codecId)?.mimeType ?? ''});
        }
      });
      const q = result.outbound.find((o) => o.rid === 'q');
      if (events.length > 0 && q && q.framesEncoded >= 20) break;
      await sleep(100);
    }
    result.active = sender.getParameters().encodings.filter((e) => e.active).map((e) => e.rid);
  } catch (err) {
    result.exception = `${err.code ?? err.name}: ${err.message}`;
  }
  result.events = events;
  client.close();
  return result;
})()
