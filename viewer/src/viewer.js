// The 3D viewer embedded in report.html and the preference study. Bundled by esbuild into one
// classic script (window.DreamFlowViewer) so a page opened from file:// needs no server, no
// module loading and no network. A .glb arrives as base64 (inline, or from a classic script that
// sets window.DreamFlowGLB[key]); file:// pages cannot fetch() neighbouring files.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

// Mount a viewer in `element` showing the .glb in `buffer` (ArrayBuffer). Resolves with a handle
// {scene, camera, renderer, root, dispose()}; rejects with the loader's error.
function mount(element, buffer, options = {}) {
  const width = options.width || element.clientWidth || 256;
  const height = options.height || element.clientHeight || width;
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(width, height);
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  element.replaceChildren(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(options.background || "#ffffff");
  scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 1.5);
  sun.position.set(2, 4, 3);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, width / height, 0.01, 100);
  const controls = new OrbitControls(camera, renderer.domElement);
  let frame = 0;
  const handle = { scene, camera, renderer, controls, root: null, dispose };
  function draw() {
    controls.update();
    renderer.render(scene, camera);
  }
  function loop() {
    frame = requestAnimationFrame(loop);
    draw();
  }
  function dispose() {
    cancelAnimationFrame(frame);
    controls.dispose();
    renderer.dispose();
    renderer.forceContextLoss();
  }
  return new Promise((resolve, reject) => {
    new GLTFLoader().parse(buffer, "", (gltf) => {
      const root = gltf.scene;
      scene.add(root);
      handle.root = root;
      // Frame the object from the front (+Z in glTF), slightly above, as the turntables do.
      const box = new THREE.Box3().setFromObject(root);
      const centre = box.getCenter(new THREE.Vector3());
      const size = box.getSize(new THREE.Vector3()).length();
      camera.position.copy(centre).add(new THREE.Vector3(0, 0.35 * size, 1.3 * size));
      controls.target.copy(centre);
      controls.autoRotate = options.autoRotate !== false;
      draw();
      if (options.animate !== false) loop();
      resolve(handle);
    }, (error) => reject(error));
  });
}

function mountBase64(element, base64, options) {
  return mount(element, decodeBase64(base64), options);
}

// Load window.DreamFlowGLB[key] from a classic script file (works from file://), then mount it.
function mountScript(element, src, key, options) {
  window.DreamFlowGLB = window.DreamFlowGLB || {};
  const ready = window.DreamFlowGLB[key] ? Promise.resolve() : new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
  return ready.then(() => mountBase64(element, window.DreamFlowGLB[key], options));
}

// Geometry facts the tests check: the loaded object's box and mean distance from the vertical
// axis in its top and bottom fifths (an upright cone is narrow at the top), and whether every
// mesh carries a texture and normals.
function describe(root) {
  root.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(root);
  const points = [];
  let textured = true, normals = true, meshes = 0;
  root.traverse((node) => {
    if (!node.isMesh) return;
    meshes += 1;
    textured = textured && !!(node.material && node.material.map && node.material.map.image);
    normals = normals && !!node.geometry.attributes.normal;
    const position = node.geometry.attributes.position;
    const v = new THREE.Vector3();
    for (let i = 0; i < position.count; i++) points.push(v.fromBufferAttribute(position, i).applyMatrix4(node.matrixWorld).clone());
  });
  const centre = box.getCenter(new THREE.Vector3());
  const span = box.max.y - box.min.y;
  const radius = (lo, hi) => {
    const band = points.filter((p) => p.y >= box.min.y + lo * span && p.y <= box.min.y + hi * span);
    return band.reduce((sum, p) => sum + Math.hypot(p.x - centre.x, p.z - centre.z), 0) / Math.max(1, band.length);
  };
  return {
    meshes, textured, normals, vertices: points.length,
    min: box.min.toArray(), max: box.max.toArray(),
    radiusTop: radius(0.8, 1.0), radiusBottom: radius(0.0, 0.2),
  };
}

window.DreamFlowViewer = { mount, mountBase64, mountScript, describe, decodeBase64, THREE };
